import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockError } from '../errors.js';
import { MemoryFile } from '../memory-file.js';
import { RawDriver } from '../raw/raw-driver.js';
import { createQcow2, type Qcow2CreateOptions } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { testCodec } from './test-codec.js';

async function fresh(options: Partial<Qcow2CreateOptions> & { size: number }): Promise<{ file: MemoryFile; disk: Qcow2Driver }> {
  const file = new MemoryFile();
  await createQcow2(file, options);
  const disk = await Qcow2Driver.open(file, { codecs: { deflate: testCodec('deflate'), zstd: testCodec('zstd') } });
  return { file, disk };
}

/** Fast byte comparison (vitest's deep equality is slow on large typed arrays). */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  let i = 0;
  while (i < actual.length && actual[i] === expected[i]) i++;
  expect(i === actual.length ? 'equal' : `first difference at byte ${i}`).toBe('equal');
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7 + (i >> 9)) & 0xff || 1;
  return out;
}

describe('Qcow2Driver basics', () => {
  it('a fresh image reads as zeroes and keeps what is written', async () => {
    const { file, disk } = await fresh({ size: 1 << 20, clusterSize: 4096 });
    const out = new Uint8Array(8192);
    await disk.read(0, out);
    expect(out.every((b) => b === 0)).toBe(true);
    const data = pattern(5000, 3);
    await disk.write(1000, data);
    await disk.read(1000, out.subarray(0, 5000));
    expect(out.subarray(0, 5000)).toEqual(data);
    await disk.close();
    const again = await Qcow2Driver.open(new MemoryFile({ data: file.snapshot() }));
    const back = new Uint8Array(5000);
    await again.read(1000, back);
    expect(back).toEqual(data);
    await again.close();
  });

  it('refuses reads and writes past the virtual size', async () => {
    const { disk } = await fresh({ size: 65536 });
    await expect(disk.read(65000, new Uint8Array(1000))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(disk.write(65536, new Uint8Array(1))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a closed driver throws CLOSED', async () => {
    const { disk } = await fresh({ size: 65536 });
    await disk.close();
    const error: unknown = await disk.read(0, new Uint8Array(1)).catch((e: unknown) => e);
    expect(BlockError.isInstance(error) && error.code).toBe('CLOSED');
  });
});

type Op =
  | { kind: 'write'; offset: number; length: number; seed: number }
  | { kind: 'zero'; offset: number; length: number; unmap: boolean }
  | { kind: 'discard'; offset: number; length: number }
  | { kind: 'compressed'; cluster: number; seed: number }
  | { kind: 'flushReopen' };

const configs: (Partial<Qcow2CreateOptions> & { name: string; backing?: boolean })[] = [
  { name: 'v3 4k over a raw backing file', clusterSize: 4096, backing: true },
  { name: 'v2 1k over a raw backing file', clusterSize: 1024, compat: '0.10', backing: true },
  { name: 'v3 16k extl2 over a raw backing file', clusterSize: 16384, extendedL2: true, backing: true },
  { name: 'v3 4k r16', clusterSize: 4096 },
  { name: 'v3 512 r1', clusterSize: 512, refcountBits: 1 },
  { name: 'v2 1k', clusterSize: 1024, compat: '0.10' },
  { name: 'v3 16k extl2 r64', clusterSize: 16384, extendedL2: true, refcountBits: 64 },
  { name: 'v3 2k r4 lazy', clusterSize: 2048, refcountBits: 4, lazyRefcounts: true },
];

describe('qcow2 model test: random writes, zeroes, discards and reads equal a plain byte array', () => {
  for (const config of configs) {
    it(config.name, async () => {
      const size = 96 * 1024;
      const cs = config.clusterSize!;
      const opArb: fc.Arbitrary<Op> = fc.oneof(
        fc.record({ kind: fc.constant('write' as const), offset: fc.nat(size - 1), length: fc.integer({ min: 1, max: 3 * cs }), seed: fc.nat(255) }),
        fc.record({ kind: fc.constant('zero' as const), offset: fc.nat(size - 1), length: fc.integer({ min: 1, max: 3 * cs }), unmap: fc.boolean() }),
        fc.record({ kind: fc.constant('discard' as const), offset: fc.nat(size - 1), length: fc.integer({ min: 1, max: 3 * cs }) }),
        fc.record({ kind: fc.constant('compressed' as const), cluster: fc.nat(size / cs - 1), seed: fc.nat(255) }),
        fc.constant({ kind: 'flushReopen' as const }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }), async (batches) => {
          let file = new MemoryFile();
          // The backing file is shorter than the disk: its tail reads as zeroes.
          const backingBytes = config.backing === true ? pattern(size - 5 * 1024, 77) : undefined;
          await createQcow2(file, { ...config, size, ...(backingBytes === undefined ? {} : { backingFile: 'base', backingFormat: 'raw' }) });
          const codecs = { deflate: testCodec('deflate') };
          const options = {
            codecs,
            l2CacheBytes: 0,
            refcountCacheBytes: 0,
            ...(backingBytes === undefined
              ? {}
              : { openBacking: () => Promise.resolve(RawDriver.open(new MemoryFile({ data: backingBytes, readOnly: true }))) }),
          };
          let disk = await Qcow2Driver.open(file, options);
          const model = new Uint8Array(size);
          if (backingBytes !== undefined) model.set(backingBytes);
          for (const batch of batches) {
            // Each batch runs concurrently; overlapping operations are applied to the model in
            // issue order only when they do not overlap, so drop the later overlapping ones.
            const taken: Op[] = [];
            const ranges: [number, number][] = [];
            for (const op of batch) {
              if (op.kind === 'flushReopen') {
                taken.push(op);
                continue;
              }
              const start = op.kind === 'compressed' ? op.cluster * cs : op.offset;
              const end = op.kind === 'compressed' ? start + cs : Math.min(size, op.offset + op.length);
              if (ranges.some(([s, e]) => start < e && s < end)) continue;
              ranges.push([start, end]);
              taken.push(op);
            }
            const reopen = taken.some((op) => op.kind === 'flushReopen');
            await Promise.all(
              taken.map(async (op) => {
                switch (op.kind) {
                  case 'write': {
                    const length = Math.min(op.length, size - op.offset);
                    const data = pattern(length, op.seed);
                    model.set(data, op.offset);
                    await disk.write(op.offset, data);
                    return;
                  }
                  case 'zero': {
                    const length = Math.min(op.length, size - op.offset);
                    model.fill(0, op.offset, op.offset + length);
                    await disk.writeZeroes(op.offset, length, { mayUnmap: op.unmap });
                    return;
                  }
                  case 'discard': {
                    // Discarded whole clusters read as zero (v2 with a backing file: as the
                    // backing file, having no zero flag); partial ones are kept.
                    const length = Math.min(op.length, size - op.offset);
                    const first = Math.ceil(op.offset / cs) * cs;
                    let end = Math.floor((op.offset + length) / cs) * cs;
                    if (op.offset + length === size) end = size;
                    if (end > first) {
                      model.fill(0, first, end);
                      if (backingBytes !== undefined && config.compat === '0.10') {
                        model.set(backingBytes.subarray(first, Math.min(end, backingBytes.length)), first);
                      }
                    }
                    await disk.discard(op.offset, length);
                    return;
                  }
                  case 'compressed': {
                    const data = op.seed % 2 === 0 ? new Uint8Array(cs).fill(op.seed) : pattern(cs, op.seed);
                    model.set(data, op.cluster * cs);
                    await disk.writeCompressed(op.cluster * cs, data);
                    return;
                  }
                  default:
                    return;
                }
              }),
            );
            if (reopen) {
              await disk.close();
              file = new MemoryFile({ data: file.snapshot() });
              disk = await Qcow2Driver.open(file, options);
            }
            const out = new Uint8Array(size);
            await disk.read(0, out);
            expectSameBytes(out, model);
          }
          await disk.close();
          const check = await Qcow2Driver.open(new MemoryFile({ data: file.snapshot() }), { ...options, readOnly: true });
          const out = new Uint8Array(size);
          await check.read(0, out);
          expectSameBytes(out, model);
          expect((await check.info()).dirty).toBe(false);
          await check.close();
        }),
        { numRuns: Number(process.env.QCOW2_MODEL_RUNS ?? 25) },
      );
    });
  }
});
