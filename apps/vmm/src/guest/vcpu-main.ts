import type { BootInfo } from '../engine/boot-info.js';
import { PLATFORM_CONTROL_BASE, WORKLOAD_BEGIN, WORKLOAD_END } from '../engine/layout.js';
import { VmmError } from '../errors.js';
import type { WorkloadResult } from '../report.js';
import { runBench } from '../workloads/bench.js';
import { runConsole } from '../workloads/console.js';
import type { GuestConsole, GuestDisk, GuestNet, GuestRng, WorkloadContext } from '../workloads/guest-devices.js';
import { runNetBench, runPing, runUdpEcho } from '../workloads/net.js';
import { runRng } from '../workloads/rng.js';
import { runVerify } from '../workloads/verify.js';
import type { GuestKernel } from './guest-kernel.js';

/** The front-ends a vCPU's kernel brought up, by config.devices index. */
export interface GuestDevices {
  /** By disk number (blk devices and scsi LUNs, in config order). */
  readonly disks: ReadonlyMap<number, GuestDisk>;
  readonly consoles: ReadonlyMap<number, GuestConsole>;
  readonly rngs: ReadonlyMap<number, GuestRng>;
  /** By net number (the net devices in config order). */
  readonly nets: ReadonlyMap<number, GuestNet>;
}

/** What a vCPU reports to the VMM (a worker posts these as messages). */
export interface VcpuHooks {
  progress(workload: number, fraction: number): void;
  result(workload: number, result: WorkloadResult): void;
  /** This vCPU has finished its workloads (in a multi-VM run it keeps serving the network until released). */
  idle?(): void;
}

/**
 * Runs this vCPU's workloads in order against the devices its kernel brought up. Throws the
 * first failure (a VmmError from a workload, or a driver's error).
 */
export async function runWorkloads(kernel: GuestKernel, boot: BootInfo, devices: GuestDevices, hooks: VcpuHooks): Promise<void> {
  for (const { index, config, seed } of boot.workloads) {
    let lastReported = -1;
    const context: WorkloadContext = {
      memory: kernel.memory,
      allocator: kernel.allocator,
      disk(number) {
        const disk = devices.disks.get(number);
        if (disk === undefined) throw new VmmError('INTERNAL', `disk ${number} is not driven by vCPU ${boot.vcpu}`, { vcpu: boot.vcpu });
        return disk;
      },
      console() {
        const port = devices.consoles.values().next();
        if (port.done === true) throw new VmmError('INTERNAL', `no console on vCPU ${boot.vcpu}`, { vcpu: boot.vcpu });
        return port.value;
      },
      net(number) {
        const net = devices.nets.get(number);
        if (net === undefined) throw new VmmError('INTERNAL', `net ${number} is not driven by vCPU ${boot.vcpu}`, { vcpu: boot.vcpu });
        return net;
      },
      rng() {
        const rng = devices.rngs.values().next();
        if (rng.done === true) throw new VmmError('INTERNAL', `no rng on vCPU ${boot.vcpu}`, { vcpu: boot.vcpu });
        return rng.value;
      },
      progress(fraction) {
        // Post at most 100 updates per workload.
        const step = Math.floor(fraction * 100);
        if (step === lastReported) return;
        lastReported = step;
        hooks.progress(index, fraction);
      },
    };
    let result: WorkloadResult;
    kernel.bus.write(PLATFORM_CONTROL_BASE + WORKLOAD_BEGIN, 4, index);
    switch (config.type) {
      case 'verify':
        result = await runVerify(context, config, seed);
        break;
      case 'bench':
        result = await runBench(context, config, seed);
        break;
      case 'console':
        result = await runConsole(context, config.message);
        break;
      case 'rng':
        result = await runRng(context, config.bytes);
        break;
      case 'ping':
        result = await runPing(context, config);
        break;
      case 'udp-echo':
        result = await runUdpEcho(context, config, seed);
        break;
      case 'net-bench':
        result = await runNetBench(context, config, seed);
        break;
    }
    kernel.bus.write(PLATFORM_CONTROL_BASE + WORKLOAD_END, 4, index);
    if (kernel.fault !== undefined) throw asError(kernel.fault);
    hooks.progress(index, 1);
    hooks.result(index, result);
  }
  hooks.idle?.();
}

/**
 * A lingering vCPU (multi-VM run): keeps its kernel running — interrupts dispatched, the network
 * stack answering — until `released()` says every VM is done. Checks every few milliseconds.
 */
export async function linger(kernel: GuestKernel, released: () => boolean): Promise<void> {
  while (!released()) {
    if (kernel.fault !== undefined) throw asError(kernel.fault);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

/** An interrupt handler's fault as something throwable. */
function asError(fault: unknown): Error {
  return fault instanceof Error ? fault : new VmmError('GUEST_ERROR', `interrupt handler failed: ${String(fault)}`);
}
