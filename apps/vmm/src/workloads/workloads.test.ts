import { GuestMemoryAllocator } from '@virtio-ts/device';
import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import { parseVmConfig, type BenchWorkloadConfig, type VerifyWorkloadConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import { LatencyHistogram } from '../stats/latency-histogram.js';
import { runBench } from './bench.js';
import type { GuestDisk, WorkloadContext } from './guest-devices.js';
import { fillPattern, findPatternMismatch } from './pattern.js';
import { runVerify } from './verify.js';

/** A disk over a byte array that copies to and from guest memory, with an optional fault. */
class ArrayDisk implements GuestDisk {
  readonly bytes: Uint8Array;
  readonly readOnly = false;
  reads = 0;
  writes = 0;
  flushes = 0;
  constructor(
    _memory: GuestMemory,
    size: number,
    private readonly corruptAt = -1,
  ) {
    this.bytes = new Uint8Array(size);
  }
  get capacity(): number {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    await Promise.resolve();
    this.reads++;
    return this.bytes.slice(offset, offset + length);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    await Promise.resolve();
    this.writes++;
    this.bytes.set(data, offset);
    if (this.corruptAt >= offset && this.corruptAt < offset + data.length) this.bytes[this.corruptAt]! ^= 1;
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
}

function contextFor(disk: GuestDisk, memory: GuestMemory): WorkloadContext {
  return {
    memory,
    allocator: new GuestMemoryAllocator(memory, 0, memory.size),
    disk: () => disk,
    console: () => {
      throw new Error('no console');
    },
    rng: () => {
      throw new Error('no rng');
    },
    net: () => {
      throw new Error('no net');
    },
    progress: () => {},
  };
}

const verifyConfig = (extra: object = {}): VerifyWorkloadConfig =>
  parseVmConfig({ devices: [{ type: 'blk', size: '1M' }], workloads: [{ type: 'verify', ...extra }] }).workloads[0] as VerifyWorkloadConfig;
const benchConfig = (extra: object = {}): BenchWorkloadConfig =>
  parseVmConfig({ devices: [{ type: 'blk', size: '1M' }], workloads: [{ type: 'bench', ...extra }] }).workloads[0] as BenchWorkloadConfig;

describe('pattern', () => {
  it('differs between offsets and seeds, and detects a flipped bit', () => {
    const a = new Uint8Array(4096);
    const b = new Uint8Array(4096);
    fillPattern(a, 0, 1);
    fillPattern(b, 4096, 1);
    expect(a).not.toEqual(b);
    fillPattern(b, 0, 2);
    expect(a).not.toEqual(b);
    expect(findPatternMismatch(a, 0, 1)).toBe(-1);
    a[1234]! ^= 0x10;
    expect(findPatternMismatch(a, 0, 1)).toBe(1232);
  });
});

describe('verify', () => {
  it('writes, flushes and reads back the whole span, leaving the pattern on the disk', async () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
    const disk = new ArrayDisk(memory, 256 * 1024);
    const result = await runVerify(contextFor(disk, memory), verifyConfig({ bs: '16k', iodepth: 4 }), 7);
    expect(result.bytes).toBe(256 * 1024);
    expect(disk.writes).toBe(16);
    expect(disk.reads).toBe(16);
    expect(disk.flushes).toBe(1);
    expect(findPatternMismatch(disk.bytes, 0, 7)).toBe(-1);
  });

  it('ends with VERIFY_MISMATCH naming the offset when the disk corrupts a byte', async () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
    const disk = new ArrayDisk(memory, 128 * 1024, 70_001);
    const error = await runVerify(contextFor(disk, memory), verifyConfig({ bs: '4k' }), 3).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('VERIFY_MISMATCH');
    expect((error as VmmError).context.offset).toBe(70_000);
  });
});

describe('bench', () => {
  it('keeps iodepth requests in flight for the runtime and records every latency', async () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
    const disk = new ArrayDisk(memory, 1 << 20);
    let inFlight = 0;
    let maxInFlight = 0;
    const counting: GuestDisk = {
      capacity: disk.capacity,
      readOnly: false,
      read: async (o, l) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        const data = await disk.read(o, l);
        inFlight--;
        return data;
      },
      write: (o, d) => disk.write(o, d),
      flush: () => disk.flush(),
    };
    const result = await runBench(contextFor(counting, memory), benchConfig({ rw: 'randread', iodepth: 8, numjobs: 2, runtime: '100ms' }), 1);
    expect(maxInFlight).toBe(16);
    expect(result.reads).toBe(disk.reads);
    expect(result.writes).toBe(0);
    expect(LatencyHistogram.fromJSON(result.latency).count).toBe(result.reads);
    expect(result.elapsedNs).toBeGreaterThanOrEqual(100e6);
  });

  it('mixes reads and writes in randrw by rwmixread', async () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
    const disk = new ArrayDisk(memory, 1 << 20);
    const result = await runBench(contextFor(disk, memory), benchConfig({ rw: 'randrw', rwmixread: 70, iodepth: 4, runtime: '100ms' }), 9);
    const share = result.reads / (result.reads + result.writes);
    expect(result.reads + result.writes).toBeGreaterThan(200);
    expect(share).toBeGreaterThan(0.6);
    expect(share).toBeLessThan(0.8);
  });

  it('refuses writes on a read-only disk', async () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
    const disk = Object.assign(new ArrayDisk(memory, 1 << 16), { readOnly: true });
    const error = await runBench(contextFor(disk, memory), benchConfig({ rw: 'write', runtime: '10ms' }), 1).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('GUEST_ERROR');
  });
});
