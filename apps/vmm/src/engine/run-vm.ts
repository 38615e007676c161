import { closeConsoleHost } from './console-device.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { randomInt } from 'node:crypto';
import type { VmConfig } from '../config/schema.js';
import { describeError, VmmError, type VmmErrorCode } from '../errors.js';
import { GuestKernel } from '../guest/guest-kernel.js';
import { bringUpDevices } from '../guest/front-ends.js';
import { probeTransports } from '../guest/attach-devices.js';
import { linger, runWorkloads, type VcpuHooks } from '../guest/vcpu-main.js';
import type { DeviceReport, RunReport, WorkloadResult } from '../report.js';
import { createDevice, describeDevice, type OpenedDisk } from './devices.js';
import { openDisks } from './images.js';
import { IoLoop } from './io-loop.js';
import { Machine } from './machine.js';
import { NetHost } from './net-host.js';
import { CONTROL_RELEASE, CONTROL_STOP } from './shared-state.js';
import type { VcpuMessage } from './vcpu-messages.js';

/** Hooks of a run: progress for the CLI's bar. */
export interface RunOptions {
  readonly onProgress?: (workload: number, fraction: number) => void;
  /**
   * Multi-VM runs (`runVmGroup`): the run's network host (switches shared by the VMs), this VM's
   * position, and when every VM is done. With `release`, the vCPUs keep running after their
   * workloads — the guest's network stack keeps answering the other VMs — until it resolves.
   */
  readonly group?: {
    readonly net: NetHost;
    readonly vm: number;
    readonly release: Promise<void>;
    /** Called once when every vCPU of this VM has finished its workloads. */
    readonly onWorkloadsDone: () => void;
  };
  /**
   * Test hook (inline dispatch only): runs on the guest side of vCPU 0 after its devices are up
   * and before its workloads; a hostile guest uses it to break a device's ring.
   */
  readonly guestHook?: (kernel: GuestKernel, machine: Machine) => Promise<void> | void;
}

/** Path of the built vCPU worker (Node 20 cannot run TypeScript in a worker: tests build first). */
function vcpuWorkerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const built = here.endsWith('.ts') ? join(dirname(here), '..', '..', 'dist', 'engine', 'vcpu-worker.js') : join(dirname(here), 'vcpu-worker.js');
  if (!existsSync(built)) throw new VmmError('INTERNAL', `the vCPU worker is not built (${built}): run \`pnpm --filter @virtio-ts/vmm... build\``);
  return built;
}

/**
 * Runs the model guest: opens the disks, builds the machine, boots every vCPU (worker threads, or
 * inline with synchronous dispatch), runs the workloads and returns the report. Everything opened
 * is closed again, also on failure. A guest error, a device failure or a dead vCPU ends the run
 * with a VmmError; nothing is half-applied to a config that fails validation (that happens before).
 */
export async function runVm(config: VmConfig, options: RunOptions = {}): Promise<RunReport> {
  const started = performance.now();
  const disks = await openDisks(config);
  let machine: Machine | undefined;
  // A VM alone owns its network host; in a group the group does (and has opened it).
  const ownNet = options.group === undefined ? new NetHost([config]) : undefined;
  const net = options.group?.net ?? ownNet!;
  const vm = options.group?.vm ?? 0;
  try {
    if (ownNet !== undefined) await ownNet.open(config, 0);
    const seeds = config.workloads.map((w) => (w.type === 'verify' && w.seed !== undefined ? w.seed : randomInt(2 ** 32)));
    machine = Machine.create(
      config,
      (deviceConfig, index) =>
        createDevice(config, deviceConfig, {
          disks: disks.filter((d) => d.device === index),
          ...(deviceConfig.type === 'net' ? { net: net.backend(vm, index) } : {}),
        }),
      seeds,
      options.group !== undefined,
    );
    const results = new Array<WorkloadResult | undefined>(config.workloads.length);
    // Backing-store time per workload, between its begin and end exits (exact: the vCPU is stopped in each).
    const diskOf = (workload: number): OpenedDisk | undefined => {
      const w = config.workloads[workload];
      if (w === undefined || (w.type !== 'bench' && w.type !== 'verify')) return undefined;
      return disks[w.disk];
    };
    const backing = new Map<number, { ns: number; requests: number }>();
    machine.onWorkloadBoundary = (boundary, workload) => {
      const disk = diskOf(workload);
      if (disk === undefined) return;
      const now = { ns: disk.driver.busyNs, requests: disk.driver.requests };
      if (boundary === 'begin') backing.set(workload, now);
      else {
        const start = backing.get(workload) ?? { ns: 0, requests: 0 };
        backing.set(workload, { ns: now.ns - start.ns, requests: now.requests - start.requests });
      }
    };
    let idle = 0;
    const hooks: VcpuHooks = {
      progress: (workload, fraction) => options.onProgress?.(workload, fraction),
      result: (workload, result) => (results[workload] = result),
      idle: () => {
        if (++idle === config.vcpus) options.group?.onWorkloadsDone();
      },
    };
    const counters =
      config.dispatch === 'inline' ? await runInline(machine, hooks, options) : await runWorkers(machine, hooks, config.timeout, options.group?.release);
    await drainDevices(machine);
    const failed = machine.devices.map((d) => [d, machine!.needsReset(d)] as const).find(([, reason]) => reason !== undefined);
    if (failed !== undefined && options.guestHook === undefined) {
      throw new VmmError('DEVICE_ERROR', `${failed[0].name} needs reset: ${failed[1]}`, { device: failed[0].name });
    }
    return {
      config,
      results: results.flatMap((r, index): WorkloadResult[] => {
        if (r === undefined) return [];
        const b = backing.get(index);
        return r.type === 'bench' && b !== undefined ? [{ ...r, backingNs: b.ns, backingRequests: b.requests }] : [r];
      }),
      devices: machine.devices.map((d): DeviceReport => deviceReport(machine!, d, disks.filter((disk) => disk.device === d.index))),
      machine: {
        ...counters,
        interrupts: machine.interrupts,
        unclaimedAccesses: machine.bus.unclaimedAccesses,
        handlerFaults: machine.faultCount,
        strayMessages: machine.strayMessages,
      },
      elapsedMs: performance.now() - started,
    };
  } finally {
    if (machine !== undefined) await drainDevices(machine).catch(() => undefined);
    if (machine !== undefined) for (const d of machine.devices) closeConsoleHost(d.device);
    await Promise.allSettled(disks.map((d) => d.driver.close()));
    await ownNet?.close();
  }
}

function deviceReport(machine: Machine, device: Machine['devices'][number], disks: readonly OpenedDisk[]): DeviceReport {
  const metrics = (device.device as { metrics?: { toJSON(): Record<string, unknown> } }).metrics;
  return {
    name: device.name,
    description: describeDevice(device.config, disks),
    needsReset: machine.needsReset(device),
    metrics: metrics?.toJSON(),
    backingNs: disks.length === 0 ? undefined : disks.reduce((sum, d) => sum + d.driver.busyNs, 0),
    backingRequests: disks.length === 0 ? undefined : disks.reduce((sum, d) => sum + d.driver.requests, 0),
  };
}

/** Waits for every request in flight in every device (a device with `drain()`). */
async function drainDevices(machine: Machine): Promise<void> {
  await Promise.all(
    machine.devices.map(async (d) => {
      const drain = (d.device as { drain?: () => Promise<void> }).drain;
      if (drain !== undefined) await drain.call(d.device);
    }),
  );
}

/** Single-threaded: every vCPU's kernel on this thread, register accesses as direct calls. */
async function runInline(machine: Machine, hooks: VcpuHooks, options: RunOptions): Promise<{ exits: number; doorbells: number }> {
  const kernels = machine.boot.map((boot) => new GuestKernel(boot.vcpu, machine.memory, machine.bus, boot.heap));
  // Interrupts are delivered after the current "instruction": never inside the device's own call.
  machine.interruptSink = (vcpu, vector) => queueMicrotask(() => kernels[vcpu]!.dispatch(vector));
  let released = false;
  void options.group?.release.then(() => (released = true));
  await Promise.all(
    machine.boot.map(async (boot) => {
      const kernel = kernels[boot.vcpu]!;
      try {
        const devices = await bringUpDevices(kernel, boot, probeTransports(kernel, boot));
        if (boot.vcpu === 0) await options.guestHook?.(kernel, machine);
        await runWorkloads(kernel, boot, devices, hooks);
        if (options.group !== undefined) await linger(kernel, () => released);
      } catch (error) {
        // As from a worker: a VmmError keeps its code, a driver's error becomes GUEST_ERROR.
        if (VmmError.isInstance(error)) throw error;
        throw new VmmError('GUEST_ERROR', `vCPU ${boot.vcpu}: ${describeError(error)}`, { vcpu: boot.vcpu }, { cause: error });
      }
    }),
  );
  return { exits: machine.bus.exits, doorbells: 0 };
}

/** One worker thread per vCPU; the VMM serves exits and doorbells on this thread's I/O loop. */
async function runWorkers(machine: Machine, hooks: VcpuHooks, timeoutMs: number, release: Promise<void> | undefined): Promise<{ exits: number; doorbells: number }> {
  const workerPath = vcpuWorkerPath();
  const loop = new IoLoop(machine.shared, machine.config.vcpus, machine.bus, machine.doorbellSlots, (slot) => machine.ringDoorbell(slot));
  loop.start();
  const control = new Int32Array(machine.shared.control);
  void release?.then(() => Atomics.store(control, CONTROL_RELEASE, 1));
  const workers: Worker[] = [];
  let exits = 0;
  let doorbells = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    const finished = machine.boot.map(
      (boot) =>
        new Promise<void>((resolve, reject) => {
          // No inherited execArgv: a test runner's `--conditions @virtio-ts/source` would make the
          // worker resolve workspace packages to TypeScript sources, which Node 20 cannot run.
          const worker = new Worker(workerPath, { workerData: { boot, shared: machine.shared }, execArgv: [] });
          workers.push(worker);
          let done = false;
          worker.on('message', (message: VcpuMessage) => {
            switch (message.type) {
              case 'progress':
                hooks.progress(message.workload, message.fraction);
                break;
              case 'result':
                hooks.result(message.workload, message.result);
                break;
              case 'idle':
                hooks.idle?.();
                break;
              case 'done':
                done = true;
                exits += message.exits;
                doorbells += message.doorbells;
                resolve();
                break;
              case 'error':
                done = true;
                reject(vcpuError(boot.vcpu, message.message, message.code));
                break;
            }
          });
          worker.on('error', (error) => reject(new VmmError('VCPU_FAILED', `vCPU ${boot.vcpu} crashed: ${error.message}`, { vcpu: boot.vcpu }, { cause: error })));
          worker.on('exit', (code) => {
            if (!done) reject(new VmmError('VCPU_FAILED', `vCPU ${boot.vcpu} exited with code ${code}`, { vcpu: boot.vcpu }));
          });
        }),
    );
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VmmError('TIMEOUT', `the run did not finish in ${timeoutMs / 1000} s`)), timeoutMs);
    });
    await Promise.race([Promise.all(finished), timeout]);
    return { exits, doorbells };
  } catch (error) {
    Atomics.store(control, CONTROL_STOP, 1);
    throw error;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    await Promise.all(workers.map((w) => w.terminate()));
    await loop.stop();
  }
}

const CODES = new Set<string>(['INVALID_CONFIG', 'INVALID_OPTION', 'IMAGE', 'GUEST_ERROR', 'DEVICE_ERROR', 'VERIFY_MISMATCH', 'UNHANDLED_EXIT', 'VCPU_FAILED', 'TIMEOUT', 'INTERNAL']);

/**
 * A vCPU's failure as a VmmError: a VmmError keeps its code; any other error (a driver's
 * DeviceError, a RingError) keeps its own `[CODE]` in the message and becomes GUEST_ERROR.
 */
function vcpuError(vcpu: number, message: string, code: string): VmmError {
  if (CODES.has(code)) return new VmmError(code as VmmErrorCode, `vCPU ${vcpu}: ${message.replace(/ \[[A-Z_]+\]( \(.*\))?$/, '')}`, { vcpu });
  return new VmmError('GUEST_ERROR', `vCPU ${vcpu}: ${message}`, { vcpu });
}
