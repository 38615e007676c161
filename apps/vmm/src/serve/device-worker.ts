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
  readonly driver?: BlockDriver;
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
    const device = new BlkDevice({ driver, readOnly: spec.readOnly, serial: spec.serial, numQueues: spec.queues, queueSize: spec.queueSize, packed: spec.packed });
    return { device, driver, describe: `blk ${spec.path} (${spec.format}, ${(driver.length / 2 ** 20).toFixed(0)} MiB${spec.readOnly ? ', read-only' : ''}, ${spec.queues} queue(s))` };
  }
  if (spec.kind === 'scsi') {
    const driver = await openImage(spec.path, { format: spec.format, readOnly: spec.readOnly });
    try {
      const device = new ScsiDevice({
        luns: [{ target: 0, lun: 0, unit: { driver, readOnly: spec.readOnly, serial: spec.serial } }],
        numQueues: spec.queues,
        queueSize: spec.queueSize,
        packed: spec.packed,
      });
      return { device, driver, describe: `scsi ${spec.path} (${spec.format}, ${(driver.length / 2 ** 20).toFixed(0)} MiB${spec.readOnly ? ', read-only' : ''}, target 0 lun 0, ${spec.queues} request queue(s))` };
    } catch (error) {
      await driver.close().catch(() => undefined);
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
    await built?.driver?.close().catch(() => undefined);
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
    await built.driver?.close().catch(() => undefined);
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
      if (built.driver && !built.driver.readOnly) await built.driver.flush();
    }
  } finally {
    await waiter.close();
    listener.close();
    if (existsSync(spec.socket)) unlinkSync(spec.socket);
    if (built.driver) {
      await built.driver.close();
      log('image flushed and closed');
    }
    if (built.close) {
      await built.close();
      log('closed');
    }
    port.postMessage({ type: 'stopped' } satisfies DeviceWorkerMessage);
    port.close();
  }
}

await main();
