/**
 * Allocating writes run concurrently (allocate under the metadata mutex, write the data outside
 * it, link the L2 entry afterwards). These properties check them against a byte model: rounds of
 * concurrent random writes — overlapping each other, sharing clusters, allocating, copying on
 * write from a backing file, zeroing and discarding between rounds — and after every round each
 * byte must hold a value one of the writers that covered it wrote (exactly the previous value when
 * none did); at the end the image reopens with the same bytes and check finds no corruption and
 * no leak.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryFile } from '../memory-file.js';
import { RawDriver } from '../raw/raw-driver.js';
import { checkQcow2 } from './check.js';
import { createQcow2, type Qcow2CreateOptions } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';

const SIZE = 96 * 1024;

const configs: (Partial<Qcow2CreateOptions> & { name: string; backing?: boolean; cacheBytes?: number })[] = [
  { name: 'v3 4k, small caches', clusterSize: 4096, cacheBytes: 0 },
  { name: 'v3 4k over a raw backing file', clusterSize: 4096, backing: true },
  { name: 'v2 1k over a raw backing file, small caches', clusterSize: 1024, compat: '0.10', backing: true, cacheBytes: 0 },
  { name: 'v3 16k extended L2 over a raw backing file', clusterSize: 16384, extendedL2: true, backing: true },
  { name: 'v3 512 refcount_bits=1', clusterSize: 512, refcountBits: 1 },
  { name: 'v3 2k lazy refcounts', clusterSize: 2048, lazyRefcounts: true },
];

type Write = readonly [offset: number, length: number];
type Between = 'none' | 'zero' | 'discard' | 'flush';

function backingPattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((i * 7) >> 3) % 200 + 50;
  return out;
}

describe('concurrent allocating writes equal a byte model', () => {
  for (const config of configs) {
    it(config.name, async () => {
      const cs = config.clusterSize!;
      const writeArb: fc.Arbitrary<Write> = fc.tuple(fc.nat(SIZE - 1), fc.integer({ min: 1, max: 3 * cs }));
      const roundArb = fc.record({
        writes: fc.array(writeArb, { minLength: 1, maxLength: 12 }),
        between: fc.constantFrom<Between>('none', 'zero', 'discard', 'flush'),
        at: writeArb,
      });
      await fc.assert(
        fc.asyncProperty(fc.array(roundArb, { minLength: 1, maxLength: 5 }), async (rounds) => {
          const file = new MemoryFile();
          const backingBytes = config.backing === true ? backingPattern(SIZE - 3 * 1024) : undefined;
          await createQcow2(file, { ...config, size: SIZE, ...(backingBytes === undefined ? {} : { backingFile: 'base', backingFormat: 'raw' }) });
          const options = {
            ...(config.cacheBytes === undefined ? {} : { l2CacheBytes: config.cacheBytes, refcountCacheBytes: config.cacheBytes }),
            ...(backingBytes === undefined
              ? {}
              : { openBacking: () => Promise.resolve(RawDriver.open(new MemoryFile({ data: backingBytes, readOnly: true }))) }),
          };
          const disk = await Qcow2Driver.open(file, options);
          let model = new Uint8Array(SIZE);
          if (backingBytes !== undefined) model.set(backingBytes);
          for (const round of rounds) {
            // Writer i fills its range with i + 1 (values 1..12: distinct from the backing pattern's 50..249).
            // Bit i of covering[b]: writer i covered byte b.
            const covering = new Uint16Array(SIZE);
            await Promise.all(
              round.writes.map(async ([offset, length], i) => {
                const n = Math.min(length, SIZE - offset);
                for (let b = offset; b < offset + n; b++) covering[b]! |= 1 << i;
                await disk.write(offset, new Uint8Array(n).fill(i + 1));
              }),
            );
            const out = new Uint8Array(SIZE);
            await disk.read(0, out);
            for (let b = 0; b < SIZE; b++) {
              const mask = covering[b]!;
              const ok = mask === 0 ? out[b] === model[b] : out[b]! >= 1 && out[b]! <= 12 && (mask & (1 << (out[b]! - 1))) !== 0;
              if (!ok) expect(`byte ${b} = ${out[b]}, allowed ${mask === 0 ? model[b] : `writers mask ${mask.toString(2)}`}`).toBe('ok');
            }
            model = out;
            const [offset, length] = round.at;
            const n = Math.min(length, SIZE - offset);
            if (round.between === 'zero') {
              await disk.writeZeroes(offset, n, { mayUnmap: n % 2 === 0 });
              model.fill(0, offset, offset + n);
            } else if (round.between === 'discard' && config.compat !== '0.10') {
              // Whole clusters discarded read as zeroes (v3); partial ones are kept.
              await disk.discard(offset, n);
              const first = Math.ceil(offset / cs) * cs;
              const end = offset + n === SIZE ? SIZE : Math.floor((offset + n) / cs) * cs;
              if (end > first) model.fill(0, first, end);
            } else if (round.between === 'flush') {
              await disk.flush();
            }
          }
          await disk.close();
          const again = await Qcow2Driver.open(new MemoryFile({ data: file.snapshot() }), { ...options, readOnly: true });
          const out = new Uint8Array(SIZE);
          await again.read(0, out);
          let same = 0;
          while (same < SIZE && out[same] === model[same]) same++;
          expect(same === SIZE ? 'same' : `first difference at byte ${same}`).toBe('same');
          await again.close();
          const check = await checkQcow2(new MemoryFile({ data: file.snapshot(), readOnly: true }));
          expect({ corruptions: check.corruptions, leaks: check.leaks, errors: check['check-errors'] }).toEqual({ corruptions: 0, leaks: 0, errors: 0 });
        }),
        { numRuns: Number(process.env.QCOW2_MODEL_RUNS ?? 10) },
      );
    });
  }

  it('writes to one new cluster from 32 writers at once allocate it once; a failed write frees its cluster', async () => {
    const file = new MemoryFile({ maxLength: 1 << 20 });
    await createQcow2(file, { size: 4 << 20, clusterSize: 65536 });
    const disk = await Qcow2Driver.open(file);
    await Promise.all(Array.from({ length: 32 }, (_, i) => disk.write(65536 * 3 + i * 100, new Uint8Array(50).fill(i + 1))));
    const out = new Uint8Array(65536);
    await disk.read(65536 * 3, out);
    for (let i = 0; i < 32; i++) expect([out[i * 100], out[i * 100 + 49], out[i * 100 + 50]]).toEqual([i + 1, i + 1, 0]);
    // Past the file's 1 MiB limit the data write fails with NO_SPACE: the error reaches the
    // caller, and the allocated cluster is given back (no leak), the rest of the disk intact.
    const results = await Promise.allSettled(Array.from({ length: 24 }, (_, i) => disk.write((8 + i) * 65536, new Uint8Array(65536).fill(0xaa))));
    expect(results.some((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'NO_SPACE')).toBe(true);
    await disk.read(65536 * 3, out);
    expect(out[3100]).toBe(32);
    await disk.close();
    const check = await checkQcow2(new MemoryFile({ data: file.snapshot(), readOnly: true }));
    expect({ corruptions: check.corruptions, errors: check['check-errors'] }).toEqual({ corruptions: 0, errors: 0 });
  });

  it('crash model: after any crash during concurrent allocating writes (host writes since the last flush lost in any subset) check finds no corruption and every flushed write survives', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.tuple(fc.nat(SIZE - 1), fc.integer({ min: 1, max: 9000 })), { minLength: 1, maxLength: 10 }), { minLength: 2, maxLength: 4 }),
        fc.boolean(),
        fc.integer(),
        async (rounds, extendedL2, seed) => {
          const file = new MemoryFile();
          await createQcow2(file, { size: SIZE, clusterSize: extendedL2 ? 16384 : 4096, extendedL2 });
          const base = file.snapshot();
          // Every host write and flush, in order.
          const log: ({ offset: number; bytes: Uint8Array } | 'flush')[] = [];
          const write = file.write.bind(file);
          file.write = async (offset, buffer) => {
            const bytes = buffer.slice();
            await write(offset, buffer);
            log.push({ offset, bytes });
          };
          const flush = file.flush.bind(file);
          file.flush = async () => {
            await flush();
            log.push('flush');
          };
          const disk = await Qcow2Driver.open(file, { l2CacheBytes: 0, refcountCacheBytes: 0 });
          // After round r completes and is flushed, durable[r] holds what the disk must keep.
          const durable: { logLength: number; bytes: Uint8Array }[] = [];
          for (const [r, writes] of rounds.entries()) {
            await Promise.all(writes.map(([offset, length], i) => disk.write(offset, new Uint8Array(Math.min(length, SIZE - offset)).fill(r * 16 + i + 1))));
            await disk.flush();
            const bytes = new Uint8Array(SIZE);
            await disk.read(0, bytes);
            durable.push({ logLength: log.length, bytes });
          }
          await disk.close();
          let random = seed >>> 0;
          const next = (): number => (random = (Math.imul(random, 1103515245) + 12345) >>> 0) / 2 ** 32;
          for (let k = 0; k <= log.length; k += Math.max(1, Math.floor(log.length / 40))) {
            const lastFlush = log.slice(0, k).lastIndexOf('flush');
            const crashed = new MemoryFile({ data: base });
            for (let i = 0; i < k; i++) {
              const op = log[i]!;
              // Before the last completed flush everything is on disk; after it, any subset.
              if (op !== 'flush' && (i < lastFlush || next() < 0.5)) await crashed.write(op.offset, op.bytes);
            }
            const check = await checkQcow2(crashed);
            expect({ k, corruptions: check.corruptions, errors: check['check-errors'] }).toEqual({ k, corruptions: 0, errors: 0 });
            const flushedRound = durable.filter((d) => d.logLength <= lastFlush + 1).pop();
            if (flushedRound === undefined) continue;
            const image = await Qcow2Driver.open(crashed, { readOnly: true });
            const out = new Uint8Array(SIZE);
            await image.read(0, out);
            await image.close();
            // Bytes written after that flush may hold either value: compare only where the later rounds did not write.
            const later = new Uint8Array(SIZE);
            for (const d of durable) if (d.logLength > flushedRound.logLength) for (let b = 0; b < SIZE; b++) if (d.bytes[b] !== flushedRound.bytes[b]) later[b] = 1;
            let bad = -1;
            for (let b = 0; b < SIZE && bad < 0; b++) if (later[b] === 0 && out[b] !== flushedRound.bytes[b]) bad = b;
            expect(bad < 0 ? 'kept' : `k=${k}: byte ${bad} = ${out[bad]}, flushed ${flushedRound.bytes[bad]}`).toBe('kept');
          }
        },
      ),
      { numRuns: Number(process.env.QCOW2_MODEL_RUNS ?? 10) },
    );
  });
});
