import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SplitThreadConfig, SplitThreadResult } from '../testing/split-ring-threads.js';
import type { QueueFeatures } from '../types.js';
import { indirectAreaSize } from './driver-queue.js';
import { splitQueueFootprint, splitQueueLayout } from './layout.js';

// Driver in one worker, device in another, over SharedArrayBuffer guest memory, with Atomics
// doorbell and interrupt words (the model guest's ioeventfd and irqfd). Workers run the built
// JS in dist/ (Node 20 cannot run .ts in a worker): `@virtio-ts/ring/testing`'s split roles.

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const builtThreads = join(packageRoot, 'dist', 'testing', 'split-ring-threads.js');
const builtTesting = pathToFileURL(join(packageRoot, 'dist', 'testing', 'index.js')).href;

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then((m) => {
  const run = workerData.role === 'driver' ? m.runSplitDriverThread : m.runSplitDeviceThread;
  parentPort.postMessage(run(workerData.config));
});
`;

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

beforeAll(() => {
  if (!existsSync(builtThreads) || statSync(builtThreads).mtimeMs < newest(join(packageRoot, 'src'))) {
    execFileSync('pnpm', ['--filter', '@virtio-ts/ring', 'build'], { cwd: packageRoot, stdio: 'pipe' });
  }
  expect(existsSync(builtThreads)).toBe(true);
}, 120_000);

function run(role: 'driver' | 'device', config: SplitThreadConfig): Promise<SplitThreadResult> {
  return new Promise((resolve, reject) => {
    // execArgv: [] drops the runner's `--conditions @virtio-ts/source`, so imports resolve to dist.
    const worker = new Worker(workerSource, { eval: true, execArgv: [], workerData: { role, config, module: builtTesting } });
    worker.once('message', (result: SplitThreadResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${role} worker exited with code ${code}`));
    });
  });
}

async function crossThread(size: number, features: QueueFeatures, requests: number, segments: number) {
  const layout = splitQueueLayout(size, 0x1000);
  const maxDescriptors = Math.min(size, 8);
  const indirectAddress = Math.ceil((0x1000 + splitQueueFootprint(size)) / 4096) * 4096;
  const dataAddress = Math.ceil((indirectAddress + indirectAreaSize(size, maxDescriptors)) / 4096) * 4096;
  const config: SplitThreadConfig = {
    memoryBuffer: new SharedArrayBuffer(dataAddress + size * 16 * segments),
    layout,
    features,
    ...(features.indirect ? { indirectArea: { address: indirectAddress, maxDescriptors } } : {}),
    signals: new SharedArrayBuffer(8),
    requests,
    segments,
    dataAddress,
    waitTimeoutMs: 5000,
  };
  const [driver, device] = await Promise.all([run('driver', config), run('device', config)]);
  return { driver, device };
}

describe('split ring across two worker threads (SharedArrayBuffer memory, Atomics doorbells)', () => {
  const requests = Number(process.env.VIRTIO_TS_THREAD_REQUESTS ?? 20_000);
  for (const [name, size, features, segments] of [
    ['flags, 2-descriptor chains', 64, { eventIdx: false, indirect: false, inOrder: false }, 2],
    ['event idx + indirect, 4-descriptor chains', 128, { eventIdx: true, indirect: true, inOrder: false }, 4],
    ['event idx + in-order, queue of 2', 2, { eventIdx: true, indirect: false, inOrder: true }, 2],
  ] as const) {
    it(`${name}: ${requests} requests, none lost, none duplicated, no lost wakeup`, async () => {
      const { driver, device } = await crossThread(size, features, requests, segments);
      expect(driver.completed).toBe(requests);
      expect(device.completed).toBe(requests);
      expect(driver.mismatches).toBe(0);
      expect(device.mismatches).toBe(0);
      // A wait that timed out means a notification was lost (the 5 s timeout is only a safety net).
      expect(driver.timeouts + device.timeouts).toBe(0);
    }, 60_000);
  }
});
