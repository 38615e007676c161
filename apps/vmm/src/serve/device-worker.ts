// A `vmm serve` device thread: builds one device (an image opened here, so its I/O runs on this
// thread), listens on its vhost-user socket and serves one front-end connection at a time. Kicks
// reach this thread through an epoll waiter, never through the main thread's event loop.
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { BlkDevice, NetDevice, RngDevice, ScsiDevice } from '@virtio-ts/backends';
import { TapNetBackend } from '@virtio-ts/backends/node';
import type { BlockDriver } from '@virtio-ts/block';
import { openImage } from '@virtio-ts/block/node';
import type { VirtioDevice } from '@virtio-ts/device';
import { UnixListener } from '@virtio-ts/host';
import { EpollWaiter, serveConnection } from '@virtio-ts/vhost-user';
import type { ServeDeviceSpec } from './serve-options.js';

/** Messages from a device thread to the daemon. */
export type DeviceWorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'log'; readonly line: string }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'stopped' };

const LISTENER = 0;
const spec = workerData as ServeDeviceSpec;
const port = parentPort!;
const log = (line: string): void => port.postMessage({ type: 'log', line: `${spec.id}: ${line}` } satisfies DeviceWorkerMessage);

let stopping = false;
let activeShutdown: (() => void) | undefined;
let wakeAcceptLoop: (() => void) | undefined;

port.on('message', (message: { type: string }) => {
  if (message.type !== 'shutdown') return;
  stopping = true;
  activeShutdown?.();
  wakeAcceptLoop?.();
});

interface BuiltDevice {
  readonly device: VirtioDevice;
  /** The images the device serves (flushed after each connection, closed at shutdown). */
  readonly drivers?: readonly BlockDriver[];
  /** Releases what the device holds besides an image (a TAP's fds). */
  readonly close?: () => Promise<void>;
  /** Per-queue traffic for the log line at the end of each connection. */
  readonly traffic?: () => string;
  readonly describe: string;
}

async function buildDevice(): Promise<BuiltDevice> {
  if (spec.kind === 'net') {
    const backend = TapNetBackend.open({ name: spec.tap, queuePairs: spec.queues, mtu: spec.mtu, onError: (error) => log(`${error.message}`) });
    try {
      // Data plane only: QEMU's virtio-net keeps the control queue and the config space.
      const device = new NetDevice({ backend, queuePairs: spec.queues, controlQueue: false, queueSize: spec.queueSize, mac: spec.mac, mtu: spec.mtu, packed: spec.packed });
      const traffic = (): string => device.metrics.queues.map((q, i) => `${device.metrics.queueNames[i]} ${q.frames} frames/${q.bytes} bytes`).join(', ');
      return { device, close: () => backend.close(), traffic, describe: `net ${backend.description} (${spec.queues} queue pair(s), mac ${spec.mac}, mtu ${spec.mtu})` };
    } catch (error) {
      await backend.close().catch(() => undefined);
      throw error;
    }
  }
  if (spec.kind === 'blk') {
    const driver = await openImage(spec.path, { format: spec.format, readOnly: spec.readOnly });
    let device: BlkDevice;
    try {
      device = new BlkDevice({ driver, readOnly: spec.readOnly, serial: spec.serial, numQueues: spec.queues, queueSize: spec.queueSize, packed: spec.packed });
    } catch (error) {
      await driver.close().catch(() => undefined);
      throw error;
    }
    return { device, drivers: [driver], describe: `blk ${spec.path} (${spec.format}, ${(driver.length / 2 ** 20).toFixed(0)} MiB${spec.readOnly ? ', read-only' : ''}, ${spec.queues} queue(s))` };
  }
  if (spec.kind === 'scsi') {
    const drivers: BlockDriver[] = [];
    try {
      for (const lun of spec.luns) drivers.push(await openImage(lun.path, { format: lun.format, readOnly: lun.readOnly }));
      const device = new ScsiDevice({
        luns: spec.luns.map((lun, i) => ({ target: lun.target, lun: lun.lun, unit: { driver: drivers[i]!, readOnly: lun.readOnly, serial: lun.serial } })),
        numQueues: spec.queues,
        queueSize: spec.queueSize,
        packed: spec.packed,
      });
      const units = spec.luns.map((lun, i) => `${lun.target}:${lun.lun} ${lun.path} (${lun.format}, ${(drivers[i]!.length / 2 ** 20).toFixed(0)} MiB${lun.readOnly ? ', read-only' : ''})`);
      return { device, drivers, describe: `scsi ${units.join(', ')}, ${spec.queues} request queue(s)` };
    } catch (error) {
      for (const driver of drivers) await driver.close().catch(() => undefined);
      throw error;
    }
  }
  const device = new RngDevice(spec.rate > 0 ? { rateLimit: { bytes: spec.rate, periodMs: 1000 } } : {});
  return { device, describe: `rng${spec.rate > 0 ? ` (${spec.rate} B/s)` : ''}` };
}

function listen(path: string): UnixListener {
  // A stale socket from an earlier run would make bind fail; a non-socket file is left alone.
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
  return UnixListener.listen(path, 4, { nonBlocking: true });
}

async function main(): Promise<void> {
  let built;
  let listener: UnixListener | undefined;
  try {
    built = await buildDevice();
    listener = listen(spec.socket);
  } catch (error) {
    for (const driver of built?.drivers ?? []) await driver.close().catch(() => undefined);
    await built?.close?.().catch(() => undefined);
    port.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) } satisfies DeviceWorkerMessage);
    port.postMessage({ type: 'stopped' } satisfies DeviceWorkerMessage);
    port.close();
    return;
  }
  let waiter: EpollWaiter;
  try {
    waiter = new EpollWaiter();
    waiter.watch(listener.fd, LISTENER);
  } catch (error) {
    listener.close();
    for (const driver of built.drivers ?? []) await driver.close().catch(() => undefined);
    await built.close?.().catch(() => undefined);
    port.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) } satisfies DeviceWorkerMessage);
    port.postMessage({ type: 'stopped' } satisfies DeviceWorkerMessage);
    port.close();
    return;
  }
  log(`${built.describe} on ${spec.socket}`);
  port.postMessage({ type: 'ready' } satisfies DeviceWorkerMessage);
  wakeAcceptLoop = () => void waiter.close();
  let connections = 0;
  try {
    while (!stopping) {
      const socket = listener.tryAccept();
      if (socket === null) {
        await waiter.wait(1000);
        continue;
      }
      const n = ++connections;
      log(`connection ${n} opened`);
      activeShutdown = () => socket.shutdown();
      const end = await serveConnection(socket, { device: built.device, log });
      activeShutdown = undefined;
      log(`connection ${n} ${end.reason === 'closed' ? 'closed by the front-end' : `closed: ${end.error?.message ?? 'error'}`} after ${end.messages} messages; kicks per queue ${end.kicks.join('/')}`);
      if (built.traffic) log(`traffic: ${built.traffic()}`);
      for (const driver of built.drivers ?? []) if (!driver.readOnly) await driver.flush();
    }
  } finally {
    await waiter.close();
    listener.close();
    if (existsSync(spec.socket)) unlinkSync(spec.socket);
    const drivers = built.drivers ?? [];
    for (const driver of drivers) await driver.close();
    if (drivers.length > 0) log(drivers.length === 1 ? 'image flushed and closed' : `${drivers.length} images flushed and closed`);
    if (built.close) {
      await built.close();
      log('closed');
    }
    port.postMessage({ type: 'stopped' } satisfies DeviceWorkerMessage);
    port.close();
  }
}

await main();
