import { createQcow2 } from '@virtio-ts/block';
import { NodeFile } from '@virtio-ts/block/node';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median } from '../measure.js';
import { row, type Row } from '../report.js';
import type { Suite, SuiteOptions } from '../suite.js';

const run = promisify(execFile);

/** The built `vmm` CLI (the bench script builds the whole workspace first). */
const VMM = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'apps', 'vmm', 'dist', 'main.js');

/** The parts of `vmm run --json`'s report this suite reads. */
interface VmmReport {
  readonly results: readonly {
    readonly type: string;
    readonly reads?: number;
    readonly writes?: number;
    readonly bytes?: number;
    readonly elapsedNs?: number;
    readonly latency?: { readonly count: number; readonly sum: number };
    /** Backing-store time during this workload alone (the VMM brackets each workload with exits). */
    readonly backingNs?: number;
    readonly backingRequests?: number;
  }[];
}

interface Case {
  readonly name: string;
  readonly rw: 'randread' | 'read' | 'write';
  readonly bs: string;
  readonly iodepth: number;
}

const CASES: readonly Case[] = [
  { name: '4 KiB randread QD1', rw: 'randread', bs: '4k', iodepth: 1 },
  { name: '4 KiB randread QD32', rw: 'randread', bs: '4k', iodepth: 32 },
  { name: '128 KiB seq read QD4', rw: 'read', bs: '128k', iodepth: 4 },
  { name: '128 KiB seq write QD4', rw: 'write', bs: '128k', iodepth: 4 },
];

/** Bytes of the disk the bench touches: small enough to fill a qcow2 image first, big enough to miss caches. */
const SPAN = '64M';

async function vmm(args: readonly string[]): Promise<VmmReport> {
  const { stdout } = await run(process.execPath, [VMM, 'run', '--json', '--no-progress', ...args], { maxBuffer: 64 * 2 ** 20 });
  return JSON.parse(stdout) as VmmReport;
}

/**
 * One measurement: IOPS, MiB/s, and the stack's overhead per request — the guest's mean request
 * latency minus the backing store's mean time per request, both measured in the same run.
 */
async function measure(blk: string, c: Case, runtime: number): Promise<{ iops: number; mibps: number; overheadNs: number }> {
  // A memory disk is new in every run: write the span first so the bench does not measure first-touch page faults.
  const warm = blk.startsWith('size=') ? ['--workload', `verify,size=${SPAN},bs=1M,iodepth=4`] : [];
  const report = await vmm(['--blk', blk, ...warm, '--workload', `bench,rw=${c.rw},bs=${c.bs},iodepth=${c.iodepth},runtime=${runtime}ms,size=${SPAN}`]);
  const bench = report.results.find((r) => r.type === 'bench');
  if (bench?.elapsedNs === undefined || bench.latency === undefined || bench.backingRequests === undefined) throw new Error('vmm report lacks the bench result');
  const ios = (bench.reads ?? 0) + (bench.writes ?? 0);
  const seconds = bench.elapsedNs / 1e9;
  const guestNs = bench.latency.sum / bench.latency.count;
  const backingNs = bench.backingRequests === 0 ? 0 : (bench.backingNs ?? 0) / bench.backingRequests;
  return { iops: ios / seconds, mibps: (bench.bytes ?? 0) / 2 ** 20 / seconds, overheadNs: guestNs - backingNs };
}

export const suite: Suite = {
  name: 'vmm',
  description:
    'vmm: the model guest (1 vCPU worker, virtio-pci, split ring, event idx + indirect) driving virtio-blk; ' +
    'overhead = guest request latency − backing store time per request, same run',
  peerTitle: 'peer',
  async run(options: SuiteOptions): Promise<Row[]> {
    const runtime = Math.max(200, Math.round(2000 * options.scale));
    const repeats = Math.max(1, Math.min(options.repeats, 3));
    const dir = await mkdtemp(join(tmpdir(), 'bench-vmm-'));
    const rows: Row[] = [];
    try {
      const image = join(dir, 'disk.qcow2');
      const file = await NodeFile.open(image, { create: true });
      try {
        await createQcow2(file, { size: 256 * 2 ** 20 });
      } finally {
        await file.close();
      }
      // Fill the span once through the guest: a fresh image reads unallocated clusters as zeroes without I/O.
      options.log(`preparing ${image}`);
      await vmm(['--blk', `path=${image},format=qcow2`, '--workload', `verify,size=${SPAN},bs=1M,iodepth=4`]);
      const disks: [string, string][] = [
        ['memory', 'size=256M,format=raw'],
        ['qcow2 file', `path=${image},format=qcow2`],
      ];
      for (const [diskName, blk] of disks) {
        for (const c of CASES) {
          options.log(`${diskName}: ${c.name}`);
          const samples = [];
          for (let i = 0; i < repeats; i++) samples.push(await measure(blk, c, runtime));
          const name = `${diskName}, ${c.name}`;
          rows.push(row(`${name}: IOPS`, 'IOPS', median(samples.map((s) => s.iops)), null));
          rows.push(row(`${name}: bandwidth`, 'MiB/s', median(samples.map((s) => s.mibps)), null));
          rows.push(row(`${name}: stack overhead`, 'ns/req', median(samples.map((s) => s.overheadNs)), null));
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
