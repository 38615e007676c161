import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alternate } from '../measure.js';
import { row, type Row } from '../report.js';
import type { Suite, SuiteOptions } from '../suite.js';
import { benchCacheModes } from './cache-modes.js';
import { benchSeconds, missingTools, qemuImg, vimg } from './tools.js';

/** Image size of the request benchmarks. */
const BENCH_IMAGE_SIZE = 128 * 1024 * 1024;
/** Default image size of the convert benchmark (the 1 GiB); scaled by --scale or VIMG_BENCH_SIZE. */
const CONVERT_SIZE = 1024 * 1024 * 1024;
/**
 * qemu-img bench has no random mode: a stride of 7919 blocks (a prime, coprime to the number of
 * 4 KiB blocks in the image) modulo the image size visits blocks in a scattered order. Both tools
 * get exactly the same offsets.
 */
const RANDOM_STRIDE = 4096 * 7919;

interface Workload {
  readonly name: string;
  readonly write: boolean;
  readonly bufferSize: number;
  readonly depth: number;
  readonly step: number;
  readonly count: number;
}

type ImageKind = 'raw' | 'qcow2 fresh' | 'qcow2 allocated';

function workloads(scale: number): Workload[] {
  const n = (base: number): number => Math.max(200, Math.round(base * scale));
  return [
    { name: '4k random read, depth 1', write: false, bufferSize: 4096, depth: 1, step: RANDOM_STRIDE, count: n(4000) },
    { name: '4k random read, depth 32', write: false, bufferSize: 4096, depth: 32, step: RANDOM_STRIDE, count: n(20000) },
    { name: '4k random write, depth 1', write: true, bufferSize: 4096, depth: 1, step: RANDOM_STRIDE, count: n(4000) },
    { name: '4k random write, depth 32', write: true, bufferSize: 4096, depth: 32, step: RANDOM_STRIDE, count: n(20000) },
    { name: '64k sequential read', write: false, bufferSize: 65536, depth: 8, step: 65536, count: n(2000) },
    { name: '64k sequential write', write: true, bufferSize: 65536, depth: 8, step: 65536, count: n(2000) },
  ];
}

/** Writes a file of `size` bytes with a non-zero pattern in every 64 KiB block whose index is not a multiple of `holeEvery`. */
function writePatternFile(path: string, size: number, holeEvery: number): void {
  const fd = openSync(path, 'w');
  try {
    const block = Buffer.alloc(1 << 20);
    for (let offset = 0; offset < size; offset += block.length) {
      const length = Math.min(block.length, size - offset);
      for (let i = 0; i < length; i += 65536) {
        const index = (offset + i) / 65536;
        block.fill(index % holeEvery === 0 ? 0 : (index % 251) + 1, i, Math.min(length, i + 65536));
      }
      writeSync(fd, block, 0, length, offset);
    }
  } finally {
    closeSync(fd);
  }
}

async function run(options: SuiteOptions): Promise<Row[]> {
  const missing = missingTools();
  if (missing !== undefined) throw Object.assign(new Error(`block suite cannot run: ${missing}`), { code: 'PEER_MISSING' });
  const dir = mkdtempSync(join(tmpdir(), 'vimg-bench-'));
  const rows: Row[] = [];
  try {
    const raw = join(dir, 'disk.raw');
    writePatternFile(raw, BENCH_IMAGE_SIZE, 1_000_000);
    const allocated = join(dir, 'allocated.qcow2');
    qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', raw, allocated]);
    const fresh = join(dir, 'fresh.qcow2');
    const images: Record<ImageKind, { path: string; format: string; recreate?: () => void }> = {
      raw: { path: raw, format: 'raw' },
      'qcow2 fresh': { path: fresh, format: 'qcow2', recreate: () => void qemuImg(['create', '-q', '-f', 'qcow2', fresh, String(BENCH_IMAGE_SIZE)]) },
      'qcow2 allocated': { path: allocated, format: 'qcow2' },
    };
    for (const cache of benchCacheModes(process.env['VIMG_BENCH_CACHE'])) {
      for (const [kind, image] of Object.entries(images) as [ImageKind, (typeof images)[ImageKind]][]) {
        for (const load of workloads(options.scale)) {
          options.log(`${kind}, cache=${cache}: ${load.name} (${load.count} requests)`);
          const args = ['bench', '-f', image.format, '-t', cache, '-c', String(load.count), '-d', String(load.depth), '-s', String(load.bufferSize), '-S', String(load.step), ...(load.write ? ['-w'] : []), image.path];
          const measure = (tool: typeof vimg) => (): number => {
            // A fresh image is made fresh again before every run, for both tools.
            image.recreate?.();
            return load.count / benchSeconds(tool(args).stdout);
          };
          const figures = await alternate(options.repeats, measure(vimg), measure(qemuImg));
          rows.push(row(`${load.name}, ${kind}, cache=${cache}`, 'IOPS', figures.ours, figures.peer));
        }
      }
    }
    rows.push(...(await convertRows(dir, options)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** `vimg convert` vs `qemu-img convert` of a qcow2 with a backing file, to qcow2 and to raw. */
async function convertRows(dir: string, options: SuiteOptions): Promise<Row[]> {
  const envSize = process.env['VIMG_BENCH_SIZE'];
  const size = envSize !== undefined ? Number(envSize) : Math.max(16 << 20, Math.round((CONVERT_SIZE * Math.min(1, options.scale)) / 65536) * 65536);
  const baseRaw = join(dir, 'base.raw');
  writePatternFile(baseRaw, size, 4); // a quarter of the clusters stay holes
  const base = join(dir, 'base.qcow2');
  qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', baseRaw, base]);
  rmSync(baseRaw);
  const top = join(dir, 'top.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top]);
  // Overwrite every 8th MiB in the top image.
  const writes: string[] = [];
  for (let offset = 0; offset < size; offset += 8 << 20) writes.push('-c', `write -P 0x5a ${offset} 1M`);
  runQemuIo([...writes, '-f', 'qcow2', top]);
  const rows: Row[] = [];
  const mb = size / 1e6;
  for (const format of ['qcow2', 'raw'] as const) {
    const out = join(dir, `out.${format}`);
    options.log(`convert ${mb.toFixed(0)} MB qcow2+backing -> ${format}`);
    const measure = (tool: typeof vimg) => (): number => {
      rmSync(out, { force: true });
      return mb / tool(['convert', '-f', 'qcow2', '-O', format, top, out]).seconds;
    };
    const figures = await alternate(options.repeats, measure(vimg), measure(qemuImg));
    rows.push(row(`convert qcow2+backing (${mb.toFixed(0)} MB) -> ${format}`, 'MB/s', figures.ours, figures.peer));
  }
  return rows;
}

function runQemuIo(args: readonly string[]): void {
  // qemu-io takes many -c commands in one process.
  const r = spawnSync('qemu-io', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-io failed: ${r.stderr}`);
}

/** `pnpm bench block`: vimg against qemu-img, same images, alternating runs. */
export const suite: Suite = {
  name: 'block',
  description:
    'vimg bench / convert vs qemu-img bench / convert on the same images (alternating runs, median). IOPS and MB/s: higher is better; ratio = vimg / qemu-img',
  peerTitle: 'qemu-img',
  run,
};
