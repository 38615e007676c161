import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import type { RunReport } from '../report.js';
import { findPatternMismatch } from '../workloads/pattern.js';
import type { VerifyResult } from '../workloads/verify.js';
import type { BenchResult } from '../workloads/bench.js';
import { createImage, readImage } from './images.js';
import { runVm } from './run-vm.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmm-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Variant {
  readonly transport: 'pci' | 'mmio';
  readonly ring: 'split' | 'packed';
  readonly eventIdx: boolean;
  readonly indirect: boolean;
}
const variants: Variant[] = (['pci', 'mmio'] as const).flatMap((transport) =>
  (['split', 'packed'] as const).flatMap((ring) => [true, false].flatMap((eventIdx) => [true, false].map((indirect) => ({ transport, ring, eventIdx, indirect })))),
);
const name = (v: Variant): string => `${v.transport} ${v.ring} eventIdx=${v.eventIdx ? 'on' : 'off'} indirect=${v.indirect ? 'on' : 'off'}`;

/**
 * One full run: a file-backed disk (qcow2 or raw), rng and console; a short random read/write
 * bench, then verify (so the image ends with verify's pattern), console echo and rng. Afterwards
 * the image is read back with @virtio-ts/block and must hold exactly the pattern.
 */
async function fullRun(variant: Variant, dispatch: 'inline' | 'workers', index: number): Promise<RunReport> {
  const format = index % 2 === 0 ? 'qcow2' : 'raw';
  const path = join(dir, `${dispatch}-${index}.${format}`);
  await createImage(path, format, 2 * 2 ** 20);
  const config = parseVmConfig({
    ...variant,
    dispatch,
    memory: '32M',
    queueSize: 16,
    devices: [{ type: 'blk', path, format, queues: 2 }, { type: 'rng' }, { type: 'console' }],
    workloads: [
      { type: 'bench', rw: 'randrw', bs: '4k', iodepth: 4, runtime: '100ms' },
      // 32 KiB blocks at depth 4 in a 16-entry ring: descriptors run out without indirect tables.
      { type: 'verify', size: '1M', bs: '32k', iodepth: 4 },
      { type: 'console', message: 'echo, echo' },
      { type: 'rng', bytes: 8192 },
    ],
  });
  const report = await runVm(config);
  expect(report.results.map((r) => r.type)).toEqual(['bench', 'verify', 'console', 'rng']);
  expect(report.devices.map((d) => d.needsReset)).toEqual([undefined, undefined, undefined]);
  const verify = report.results.find((r): r is VerifyResult => r.type === 'verify')!;
  expect(verify.bytes).toBe(2 ** 20);
  // The workload-boundary exits bracket the bench exactly: one backing-store call per 4 KiB request.
  const bench = report.results.find((r): r is BenchResult => r.type === 'bench')!;
  expect(bench.backingRequests).toBe(bench.reads + bench.writes);
  const image = await readImage(path, format, 0, 2 ** 20);
  expect(findPatternMismatch(image, 0, verify.seed)).toBe(-1);
  return report;
}

describe('full stack in one process (inline, synchronous dispatch)', () => {
  it.each(variants.map((v, i) => [name(v), v, i] as const))('%s: the image holds what the guest wrote', async (_name, variant, index) => {
    const report = await fullRun(variant, 'inline', index);
    expect(report.machine.exits).toBeGreaterThan(0);
    expect(report.machine.interrupts).toBeGreaterThan(0);
  });
});

describe('full stack across vCPU worker threads', () => {
  it('every transport × ring × event idx × indirect: the image holds what the guest wrote', async () => {
    // Four machines at a time: each boots its own worker; the I/O loops share this thread.
    const reports: RunReport[] = [];
    for (let i = 0; i < variants.length; i += 4) {
      reports.push(...(await Promise.all(variants.slice(i, i + 4).map((v, j) => fullRun(v, 'workers', i + j)))));
    }
    for (const report of reports) {
      // Queue notifications went through doorbells, not exits (ioeventfd).
      expect(report.machine.doorbells).toBeGreaterThan(0);
      expect(report.machine.interrupts).toBeGreaterThan(0);
    }
  }, 120_000);

  it('runs two vCPUs, each driving its own disk', async () => {
    const config = parseVmConfig({
      vcpus: 2,
      memory: '32M',
      devices: [
        { type: 'blk', size: '1M' },
        { type: 'blk', size: '1M', format: 'qcow2' },
      ],
      workloads: [
        { type: 'verify', disk: 0, size: '512k' },
        { type: 'verify', disk: 1, size: '512k' },
      ],
    });
    const report = await runVm(config);
    expect(report.results.map((r) => r.type === 'verify' && r.disk)).toEqual([0, 1]);
  }, 60_000);
});

describe('a hostile guest at the VMM level', () => {
  it.each(['pci', 'mmio'] as const)('%s: a broken ring puts that device in NEEDS_RESET; the VMM and the other devices keep serving', async (transport) => {
    const config = parseVmConfig({
      transport,
      dispatch: 'inline',
      memory: '32M',
      devices: [{ type: 'blk', size: '1M' }, { type: 'blk', size: '1M' }, { type: 'rng' }],
      workloads: [
        { type: 'verify', disk: 1, size: '256k' },
        { type: 'rng', bytes: 4096 },
      ],
    });
    const report = await runVm(config, {
      guestHook: (kernel, machine) => {
        // §2.7.6: the driver moves avail idx by what it added; a jump of 0x8000 is a corrupt ring
        // (HOSTILE-INPUTS H2). The guest writes it into blk0's ring and kicks.
        const queue = machine.devices[0]!.slot.core.queues[0]!;
        const availRing = queue.driverHi * 2 ** 32 + queue.driverLo;
        kernel.memory.writeU16(availRing + 2, (kernel.memory.readU16(availRing + 2) + 0x8000) & 0xffff);
        machine.devices[0]!.slot.notifyQueue(0);
      },
    });
    expect(report.devices[0]!.needsReset).toMatch(/AVAIL_INDEX_JUMP|avail/i);
    expect(report.devices[1]!.needsReset).toBeUndefined();
    expect(report.devices[2]!.needsReset).toBeUndefined();
    expect(report.results.map((r) => r.type)).toEqual(['verify', 'rng']);
  });

  it('a disk that cannot be opened fails the run before anything starts, naming the device', async () => {
    const config = parseVmConfig({ dispatch: 'inline', devices: [{ type: 'rng' }, { type: 'blk', path: join(dir, 'missing.img') }] });
    const error = await runVm(config).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('IMAGE');
    expect((error as Error).message).toContain('devices.1');
  });

  it('a guest error ends a worker run with VmmError, not a crash', async () => {
    // verify on a read-only-in-fact disk: the device refuses writes (VIRTIO_BLK_F_RO), the driver throws.
    const path = join(dir, 'ro.raw');
    await createImage(path, 'raw', 2 ** 20);
    const config = parseVmConfig({ devices: [{ type: 'blk', path, format: 'raw' }], workloads: [{ type: 'verify', size: '64k' }] });
    const readOnly = { ...config, devices: [{ ...config.devices[0]!, readOnly: true }] } as typeof config;
    const error = await runVm(readOnly).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('GUEST_ERROR');
    expect((error as Error).message).toMatch(/vCPU 0: .*read-only/i);
  }, 30_000);
});
