import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PackedThreadConfig, PackedThreadResult } from '../testing/packed-ring-threads.js';
import type { QueueFeatures } from '../types.js';
import { packedQueueFootprint, packedQueueLayout } from './layout.js';

// Driver in one worker, device in another, over SharedArrayBuffer guest memory, with Atomics
// doorbell and interrupt words (the model guest's ioeventfd and irqfd). Workers run the built
// JS in dist/ (Node 20 cannot run .ts in a worker): `@virtio-ts/ring/testing`'s thread roles.

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const builtThreads = join(packageRoot, 'dist', 'testing', 'packed-ring-threads.js');
const builtTesting = pathToFileURL(join(packageRoot, 'dist', 'testing', 'index.js')).href;

// A tiny CommonJS worker body: load the built helpers, run one role, post the result.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then((m) => {
  const run = workerData.role === 'driver' ? m.runPackedDriverThread : m.runPackedDeviceThread;
  parentPort.postMessage(run(workerData.config));
});
`;

/** Newest modification time under `dir` of files accepted by `filter`. */
function newest(dir: string, filter: (name: string) => boolean): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path, filter));
    else if (filter(entry.name)) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

beforeAll(() => {
  const source = newest(join(packageRoot, 'src'), (name) => name.endsWith('.ts') && !name.endsWith('.test.ts'));
  if (!existsSync(builtThreads) || statSync(builtThreads).mtimeMs < source) {
    execFileSync('pnpm', ['--filter', '@virtio-ts/ring', 'build'], { cwd: packageRoot, stdio: 'pipe' });
  }
  expect(existsSync(builtThreads)).toBe(true);
}, 120_000);

function run(role: 'driver' | 'device', config: PackedThreadConfig): Promise<PackedThreadResult> {
  return new Promise((resolve, reject) => {
    // execArgv: [] drops the test runner's `--conditions @virtio-ts/source`, so imports resolve to dist.
    const worker = new Worker(workerSource, { eval: true, execArgv: [], workerData: { role, config, module: builtTesting } });
    worker.once('message', (result: PackedThreadResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${role} worker exited with code ${code}`));
    });
  });
}

async function crossThread(size: number, features: QueueFeatures, requests: number, segments: number, batch = 1) {
  const layout = packedQueueLayout(size, 0x1000);
  const indirectAddress = Math.ceil((layout.descRing + packedQueueFootprint(size)) / 4096) * 4096;
  const maxDescriptors = 8;
  const dataAddress = Math.ceil((indirectAddress + size * maxDescriptors * 16) / 4096) * 4096;
  const memoryBuffer = new SharedArrayBuffer(dataAddress + size * 16 * segments);
  const config: PackedThreadConfig = {
    memoryBuffer,
    layout,
    features,
    ...(features.indirect ? { indirectArea: { address: indirectAddress, maxDescriptors } } : {}),
    signals: new SharedArrayBuffer(8),
    requests,
    segments,
    dataAddress,
    batch,
    waitTimeoutMs: 10_000, // generous: a loaded CI machine can starve a worker for a while
  };
  const [driver, device] = await Promise.all([run('driver', config), run('device', config)]);
  return { driver, device };
}

describe('packed ring across threads', () => {
  it.each<[string, number, QueueFeatures, number, number]>([
    ['EVENT_IDX (DESC mode), size 256', 256, { eventIdx: true, indirect: false, inOrder: false }, 2, 1],
    ['flags only, size 100 (not a power of two)', 100, { eventIdx: false, indirect: false, inOrder: false }, 3, 1],
    ['indirect + EVENT_IDX, size 7', 7, { eventIdx: true, indirect: true, inOrder: false }, 4, 1],
    ['IN_ORDER batches of 8, size 64', 64, { eventIdx: true, indirect: false, inOrder: true }, 2, 8],
  ])('%s: 20,000 requests, none lost, duplicated or corrupted', async (_name, size, features, segments, batch) => {
    const requests = 20_000;
    const { driver, device } = await crossThread(size, features, requests, segments, batch);
    expect(device.completed).toBe(requests);
    expect(driver.completed).toBe(requests);
    expect(device.mismatches).toBe(0);
    expect(driver.mismatches).toBe(0);
    // A timeout means a sleeping side missed its notification.
    expect(driver.timeouts + device.timeouts).toBe(0);
  });
});
