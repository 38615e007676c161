import type { L2SwitchStats } from '@virtio-ts/backends';
import type { VmGroupConfig } from '../config/group.js';
import { VmmError } from '../errors.js';
import type { RunReport } from '../report.js';
import { NetHost } from './net-host.js';
import { runVm, type RunOptions } from './run-vm.js';

/** What an in-process switch did during a multi-VM run. */
export interface SwitchReport {
  readonly name: string;
  readonly ports: number;
  readonly stats: L2SwitchStats;
  /** Learned MAC → port (`vm0.net1`). */
  readonly addresses: Readonly<Record<string, string>>;
}

/** The result of a multi-VM run: each VM's report, in config order, and the switches. */
export interface GroupReport {
  readonly vms: readonly RunReport[];
  readonly switches: readonly SwitchReport[];
  readonly elapsedMs: number;
}

/** Options of {@link runVmGroup}: progress per VM. */
export interface GroupRunOptions {
  readonly onProgress?: (vm: number, workload: number, fraction: number) => void;
}

/**
 * Runs several model guests in this process at once (each with its own guest RAM, vCPU workers
 * and devices; the VMM side of all of them on this thread). Their net devices on `switch:NAME`
 * share one in-process L2 switch per name. Every VM keeps running after its workloads — its
 * network stack answering ARP, ping, UDP echo and bench traffic — until every VM has finished,
 * so a guest never pings a peer that has already shut down. The first failure releases the
 * others and is thrown (with the VM named) once every VM has stopped.
 */
export async function runVmGroup(group: VmGroupConfig, options: GroupRunOptions = {}): Promise<GroupReport> {
  const started = performance.now();
  const net = new NetHost(group.vms);
  try {
    // In order: a stream server of an earlier VM listens before a later VM's client dials.
    for (const [vm, config] of group.vms.entries()) await net.open(config, vm);
    let releaseAll!: () => void;
    const release = new Promise<void>((resolve) => (releaseAll = resolve));
    let running = group.vms.length;
    let first: { vm: number; error: unknown } | undefined;
    const done = (): void => {
      if (--running === 0) releaseAll();
    };
    const runs = group.vms.map((config, vm) => {
      const runOptions: RunOptions = {
        onProgress: (workload, fraction) => options.onProgress?.(vm, workload, fraction),
        group: { net, vm, release, onWorkloadsDone: done },
      };
      return runVm(config, runOptions).catch((error: unknown) => {
        // The first failure in time is the cause; later ones are often its consequences (a peer gone).
        first ??= { vm, error };
        releaseAll();
        throw error;
      });
    });
    const settled = await Promise.allSettled(runs);
    if (first !== undefined) {
      const { vm: failed, error } = first;
      if (VmmError.isInstance(error)) throw new VmmError(error.code, `vm ${failed}: ${error.message.replace(/ \[[A-Z_]+\]( \(.*\))?$/, '')}`, error.context, { cause: error });
      throw error;
    }
    return {
      vms: settled.map((s) => (s as PromiseFulfilledResult<RunReport>).value),
      switches: [...net.switches.values()].map((lan) => ({
        name: lan.name,
        ports: lan.portCount,
        stats: { ...lan.stats },
        addresses: Object.fromEntries(lan.addresses()),
      })),
      elapsedMs: performance.now() - started,
    };
  } finally {
    await net.close();
  }
}
