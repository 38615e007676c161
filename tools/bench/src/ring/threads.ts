import { Worker } from 'node:worker_threads';
import { packedQueueFootprint, splitQueueFootprint } from '@virtio-ts/ring';
import type { RingWorkerData } from './ring.worker.js';

const WORKER_URL = new URL('./ring.worker.js', import.meta.url);

function startWorker(data: RingWorkerData): { ready: Promise<void>; done: Promise<void>; worker: Worker } {
  const worker = new Worker(WORKER_URL, { workerData: data });
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const done = new Promise<void>((resolve, reject) => {
    worker.on('message', (m) => (m === 'ready' ? onReady() : resolve()));
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ring worker exited with ${code}`))));
  });
  return { ready, done, worker };
}

/**
 * Round trips per second across two worker threads (driver in one, device in the other) over
 * SharedArrayBuffer guest memory with Atomics doorbell/interrupt words. Worker start-up is
 * outside the timed window (a start barrier).
 */
export async function crossThreadRoundTrips(
  layout: 'split' | 'packed',
  impl: 'ours' | 'baseline',
  segments: number,
  requests: number,
  size = 256,
): Promise<number> {
  // The packed baseline keeps its two suppression words right after the descriptor ring.
  const footprint = layout === 'split' ? splitQueueFootprint(size) : packedQueueFootprint(size);
  const dataAddress = Math.ceil(footprint / 4096) * 4096;
  const memory = new SharedArrayBuffer(dataAddress + 64 * 1024);
  const signals = new SharedArrayBuffer(16);
  const base = { layout, impl, memory, signals, size, segments, requests, dataAddress };
  const device = startWorker({ ...base, role: 'device' });
  const driver = startWorker({ ...base, role: 'driver' });
  await Promise.all([device.ready, driver.ready]);
  const words = new Int32Array(signals);
  const started = performance.now();
  Atomics.store(words, 2, 1);
  Atomics.notify(words, 2);
  await Promise.all([device.done, driver.done]);
  const seconds = (performance.now() - started) / 1000;
  await Promise.all([device.worker.terminate(), driver.worker.terminate()]);
  return requests / seconds;
}
