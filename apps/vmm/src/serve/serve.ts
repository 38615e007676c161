import { Worker } from 'node:worker_threads';
import { VmmError } from '../errors.js';
import type { DeviceWorkerMessage } from './device-worker.js';
import type { ServeDeviceSpec } from './serve-options.js';

/** A running `vmm serve`: one thread per device, each on its own vhost-user socket. */
export interface ServeHandle {
  readonly devices: readonly ServeDeviceSpec[];
  /** Stops accepting, ends connections (draining in-flight requests), flushes and closes every image. */
  shutdown(): Promise<void>;
  /** Resolves when every device thread has stopped. */
  readonly stopped: Promise<void>;
}

/**
 * Starts a device daemon like qemu-storage-daemon: each device in its own worker thread with its
 * image, listening on its socket. Resolves when every device listens; if any fails to start, the
 * others are stopped again and the error names the device.
 */
export async function startServe(devices: readonly ServeDeviceSpec[], log: (line: string) => void): Promise<ServeHandle> {
  // Each device thread blocks one koffi/libuv thread-pool slot only briefly; file I/O needs the rest.
  const workerUrl = new URL('./device-worker.js', import.meta.url);
  const workers = devices.map((spec) => new Worker(workerUrl, { workerData: spec }));
  const stoppedAll = workers.map(
    (worker) =>
      new Promise<void>((resolve) => {
        worker.on('message', (message: DeviceWorkerMessage) => {
          if (message.type === 'log') log(message.line);
          if (message.type === 'stopped') resolve();
        });
        worker.on('exit', () => resolve());
        worker.on('error', (error) => {
          log(`device thread failed: ${error.message}`);
          resolve();
        });
      }),
  );
  const ready = workers.map(
    (worker, i) =>
      new Promise<void>((resolve, reject) => {
        worker.on('message', (message: DeviceWorkerMessage) => {
          if (message.type === 'ready') resolve();
          if (message.type === 'failed') reject(new VmmError('DEVICE_ERROR', `${devices[i]!.id}: ${message.message}`, { device: devices[i]!.id }));
        });
        worker.on('exit', () => reject(new VmmError('DEVICE_ERROR', `${devices[i]!.id}: device thread exited during start`, { device: devices[i]!.id })));
      }),
  );
  const shutdown = async (): Promise<void> => {
    for (const worker of workers) worker.postMessage({ type: 'shutdown' });
    await Promise.all(stoppedAll);
    await Promise.all(workers.map((w) => w.terminate()));
  };
  try {
    await Promise.all(ready);
  } catch (error) {
    await shutdown();
    throw error;
  }
  return { devices, shutdown, stopped: Promise.all(stoppedAll).then(() => undefined) };
}
