import { createQcow2 } from '@virtio-ts/block';
import { NodeFile } from '@virtio-ts/block/node';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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

/** The parts of `vmm run --json`'s report this suite reads (a multi-VM run has one per VM under `vms`). */
export interface VmmReport {
  readonly vms?: readonly VmmReport[];
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
    /** net-bench: what the peer's counter received, and over how long. */
    readonly receivedPackets?: number;
    readonly receivedBytes?: number;
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
/** A disk of the model guest: the `vmm run` flag that attaches it (`--blk` or `--scsi`) and its option list. */
interface DiskSpec {
  readonly flag: '--blk' | '--scsi';
  readonly options: string;
}

/** One measurement's figures. */
export interface DiskSample {
  readonly iops: number;
  readonly mibps: number;
  readonly overheadNs: number;
}

/**
 * One measurement: IOPS, MiB/s, and the stack's overhead per request — the guest's mean request
 * latency minus the backing store's mean time per request, both measured in the same run.
 */
async function measure(disk: DiskSpec, c: Case, runtime: number): Promise<DiskSample> {
  // A memory disk is new in every run: write the span first so the bench does not measure first-touch page faults.
  const warm = disk.options.startsWith('size=') ? ['--workload', `verify,size=${SPAN},bs=1M,iodepth=4`] : [];
  const report = await vmm([disk.flag, disk.options, ...warm, '--workload', `bench,rw=${c.rw},bs=${c.bs},iodepth=${c.iodepth},runtime=${runtime}ms,size=${SPAN}`]);
  const bench = report.results.find((r) => r.type === 'bench');
  if (bench?.elapsedNs === undefined || bench.latency === undefined || bench.backingRequests === undefined) throw new Error('vmm report lacks the bench result');
  const ios = (bench.reads ?? 0) + (bench.writes ?? 0);
  const seconds = bench.elapsedNs / 1e9;
  const guestNs = bench.latency.sum / bench.latency.count;
  const backingNs = bench.backingRequests === 0 ? 0 : (bench.backingNs ?? 0) / bench.backingRequests;
  return { iops: ios / seconds, mibps: (bench.bytes ?? 0) / 2 ** 20 / seconds, overheadNs: guestNs - backingNs };
}

/**
 * The rows of one disk and workload: the virtio-blk rows, then the same workload on the same
 * medium through virtio-scsi with the blk figure beside it as the baseline (ratio = scsi / blk;
 * the overhead rows, where lower is better, carry no ratio). Medians of the samples.
 */
export function diskRows(name: string, blk: readonly DiskSample[], scsi: readonly DiskSample[]): Row[] {
  const m = (samples: readonly DiskSample[], pick: (s: DiskSample) => number): number => median(samples.map(pick));
  return [
    row(`${name}: IOPS`, 'IOPS', m(blk, (s) => s.iops), null),
    row(`${name}: bandwidth`, 'MiB/s', m(blk, (s) => s.mibps), null),
    row(`${name}: stack overhead`, 'ns/req', m(blk, (s) => s.overheadNs), null),
    row(`${name}, scsi: IOPS`, 'IOPS', m(scsi, (s) => s.iops), m(blk, (s) => s.iops)),
    row(`${name}, scsi: bandwidth`, 'MiB/s', m(scsi, (s) => s.mibps), m(blk, (s) => s.mibps)),
    row(`${name}, scsi: stack overhead`, 'ns/req', m(scsi, (s) => s.overheadNs), null),
  ];
}

/** A net measurement: IPv4 packet size (IP header + UDP + payload) and the MTU of the two guests' link. */
export interface NetCase {
  readonly name: string;
  readonly size: number;
  readonly mtu: number;
  readonly metric: 'packets/s' | 'MiB/s';
}

export const NET_CASES: readonly NetCase[] = [
  { name: 'net, 64 B packets', size: 64, mtu: 1500, metric: 'packets/s' },
  { name: 'net, 1500 B packets', size: 1500, mtu: 1500, metric: 'MiB/s' },
  { name: 'net, 64 KiB packets (65535 B, MTU 65535)', size: 65535, mtu: 65535, metric: 'MiB/s' },
];

/**
 * The two-guest config of one net measurement: vm0 runs `net-bench` to vm1 over switch lan0 (vm1
 * has no workloads: it only receives and counts), both with 1 vCPU worker, virtio-pci, split ring.
 */
export function netBenchConfig(c: NetCase, runtimeMs: number): unknown {
  const net = { type: 'net', backend: 'switch:lan0', mtu: c.mtu };
  return {
    vms: [
      { memory: '64M', devices: [net], workloads: [{ type: 'net-bench', size: c.size, runtime: `${runtimeMs}ms` }] },
      { memory: '64M', devices: [net], workloads: [] },
    ],
  };
}

/** One net measurement's figure from the report: packets/s or MiB/s received by the peer. */
export function netFigure(report: VmmReport, c: NetCase): number {
  const bench = report.vms?.[0]?.results.find((r) => r.type === 'net-bench');
  if (bench?.elapsedNs === undefined || bench.receivedPackets === undefined || bench.receivedBytes === undefined) throw new Error('vmm report lacks the net-bench result');
  const seconds = bench.elapsedNs / 1e9;
  return c.metric === 'packets/s' ? bench.receivedPackets / seconds : bench.receivedBytes / 2 ** 20 / seconds;
}

export const suite: Suite = {
  name: 'vmm',
  description:
    'vmm: the model guest (1 vCPU worker, virtio-pci, split ring, event idx + indirect) driving virtio-blk, and the same ' +
    'disks as virtio-scsi LUNs (blk beside them as the baseline); overhead = guest request latency − backing store time per request, same run; ' +
    'net: two model guests on the in-process switch, UDP from vm0 to vm1 as received by vm1 (no peer)',
  peerTitle: 'blk',
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
      // Each disk attached as virtio-blk and as a LUN of virtio-scsi (same medium, same workload, alternating).
      const disks: [string, string][] = [
        ['memory', 'size=256M,format=raw'],
        ['qcow2 file', `path=${image},format=qcow2`],
      ];
      for (const [diskName, medium] of disks) {
        for (const c of CASES) {
          options.log(`${diskName}: ${c.name} (blk, scsi)`);
          const blk: DiskSample[] = [];
          const scsi: DiskSample[] = [];
          for (let i = 0; i < repeats; i++) {
            blk.push(await measure({ flag: '--blk', options: medium }, c, runtime));
            scsi.push(await measure({ flag: '--scsi', options: medium }, c, runtime));
          }
          rows.push(...diskRows(`${diskName}, ${c.name}`, blk, scsi));
        }
      }
      // Two model guests in one process on the in-process switch. No peer: QEMU's virtio-net between two
      // QEMU guests (TCG, kernel stacks) measures something else; these rows have ours only.
      for (const c of NET_CASES) {
        options.log(`${c.name}`);
        const config = join(dir, 'net.json');
        await writeFile(config, JSON.stringify(netBenchConfig(c, runtime)));
        const samples: number[] = [];
        for (let i = 0; i < repeats; i++) samples.push(netFigure(await vmm(['--config', config]), c));
        rows.push(row(`${c.name}: ${c.metric === 'packets/s' ? 'packets/s' : 'bandwidth'}`, c.metric, median(samples), null));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
