import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import type { BenchResult } from '../workloads/bench.js';
import { findPatternMismatch } from '../workloads/pattern.js';
import type { VerifyResult } from '../workloads/verify.js';
import { createImage, readImage } from './images.js';
import { runVm } from './run-vm.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmm-scsi-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('virtio-scsi in the model guest', () => {
  it.each([
    ['pci', 'split', 'inline'],
    ['mmio', 'packed', 'inline'],
    ['pci', 'packed', 'workers'],
  ] as const)('%s %s %s: verify and bench through two LUNs (a qcow2 file at 0:3, a memory disk at 1:0); the image holds the pattern', async (transport, ring, dispatch) => {
    const path = join(dir, `${transport}-${ring}-${dispatch}.qcow2`);
    await createImage(path, 'qcow2', 2 * 2 ** 20);
    const config = parseVmConfig({
      transport,
      ring,
      dispatch,
      memory: '32M',
      queueSize: 32,
      devices: [
        { type: 'blk', size: '1M' },
        {
          type: 'scsi',
          queues: 2,
          luns: [
            { path, format: 'qcow2', lun: 3 },
            { size: '1M', format: 'raw', target: 1, cache: 'writethrough' },
          ],
        },
      ],
      workloads: [
        // Disk 0 is the blk device; 1 and 2 are the scsi LUNs, in list order.
        { type: 'verify', disk: 1, size: '1M', bs: '64k', iodepth: 4 },
        { type: 'bench', disk: 2, rw: 'randrw', bs: '4k', iodepth: 4, runtime: '100ms' },
        { type: 'verify', disk: 2, size: '256k', bs: '4k', iodepth: 8 },
      ],
    });
    const report = await runVm(config);
    expect(report.results.map((r) => r.type)).toEqual(['verify', 'bench', 'verify']);
    expect(report.devices.map((d) => d.needsReset)).toEqual([undefined, undefined]);
    expect(report.devices[1]!.name).toBe('scsi0');
    expect(report.devices[1]!.description).toContain('0:3');
    expect(report.devices[1]!.description).toContain('1:0 memory');
    const bench = report.results.find((r): r is BenchResult => r.type === 'bench')!;
    expect(bench.disk).toBe(2);
    expect(bench.reads + bench.writes).toBeGreaterThan(0);
    // The workload-boundary exits bracket the bench: one backing-store call per 4 KiB command
    // (writethrough adds no backing read or write, only flushes).
    expect(bench.backingRequests).toBe(bench.reads + bench.writes);
    const verify = report.results.find((r): r is VerifyResult => r.type === 'verify' && r.disk === 1)!;
    expect(verify.bytes).toBe(2 ** 20);
    const image = await readImage(path, 'qcow2', 0, 2 ** 20);
    expect(findPatternMismatch(image, 0, verify.seed)).toBe(-1);
  }, 60_000);

  it('a LUN image that cannot be opened fails the run before anything starts, naming the LUN', async () => {
    const config = parseVmConfig({
      dispatch: 'inline',
      devices: [{ type: 'scsi', luns: [{ size: '1M' }, { path: join(dir, 'missing.img') }] }],
    });
    const error = await runVm(config).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('IMAGE');
    expect((error as Error).message).toContain('devices.0.luns.1');
  });

  it('a write to a read-only LUN ends the run with GUEST_ERROR (DATA PROTECT / write protected), not a crash', async () => {
    const config = parseVmConfig({
      dispatch: 'inline',
      memory: '32M',
      devices: [{ type: 'scsi', luns: [{ size: '1M' }] }],
      workloads: [{ type: 'verify', size: '64k' }],
    });
    const readOnly = { ...config, devices: [{ ...config.devices[0]!, luns: [{ ...(config.devices[0] as { luns: object[] }).luns[0]!, readOnly: true }] }] } as typeof config;
    const error = await runVm(readOnly).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('GUEST_ERROR');
    expect((error as Error).message).toMatch(/protect|read-only|READ_ONLY/i);
  });
});
