import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeCompressedDescriptor,
  decodeL1Entry,
  decodeL2Entry,
  encodeCompressedDescriptor,
  encodeL1Entry,
  encodeL2Entry,
  type L2Entry,
  type L2Format,
} from './l2-entry.js';

const formatArb: fc.Arbitrary<L2Format> = fc
  .record({ clusterBits: fc.integer({ min: 9, max: 21 }), extendedL2: fc.boolean(), v3: fc.boolean() })
  .filter((f) => !f.extendedL2 || (f.clusterBits >= 14 && f.v3))
  .map((f) => ({ clusterBits: f.clusterBits, extendedL2: f.extendedL2, zeroFlag: f.v3 && !f.extendedL2 }));

function entryArb(format: L2Format): fc.Arbitrary<L2Entry> {
  const cs = 2 ** format.clusterBits;
  const hostCluster = fc.integer({ min: 1, max: Math.floor((2 ** 52) / cs) }).map((c) => c * cs);
  const standard = fc
    .record({ offset: fc.oneof(hostCluster, fc.constant(0)), copied: fc.boolean(), zero: fc.boolean(), alloc: fc.nat(), zeroBits: fc.nat() })
    .map(({ offset, copied, zero, alloc, zeroBits }): L2Entry => {
      let allocBitmap = 0;
      let zeroBitmap = 0;
      if (format.extendedL2) {
        allocBitmap = offset === 0 ? 0 : (alloc * 2654435761) >>> 0;
        zeroBitmap = ((zeroBits * 40503) >>> 0) & ~allocBitmap;
        zeroBitmap >>>= 0;
      }
      const z = format.zeroFlag && zero;
      return {
        kind: offset === 0 ? (z ? 'zero-plain' : 'unallocated') : z ? 'zero-alloc' : 'normal',
        offset,
        copied: offset !== 0 && copied,
        compressedSize: 0,
        allocBitmap,
        zeroBitmap,
      };
    });
  const compressed = fc
    .record({ offset: fc.nat({ max: 2 ** 40 }), size: fc.integer({ min: 1, max: cs }) })
    .map(({ offset, size }): L2Entry => {
      const d = decodeCompressedDescriptor(...encodeCompressedDescriptor(offset, size, format.clusterBits), format.clusterBits);
      return { kind: 'compressed', offset, copied: false, compressedSize: d.size, allocBitmap: 0, zeroBitmap: 0 };
    });
  return fc.oneof(standard, compressed);
}

describe('L2 entry codec', () => {
  it('round-trips standard, zero and compressed entries for cluster_bits 9..21, with and without extended L2', () => {
    fc.assert(
      fc.property(formatArb.chain((format) => fc.tuple(fc.constant(format), entryArb(format))), ([format, entry]) => {
        expect(decodeL2Entry(encodeL2Entry(entry, format), format)).toEqual(entry);
      }),
      { numRuns: 500 },
    );
  });

  it('compressed descriptor: the stored size covers the data (sectors * 512 - offset % 512 >= size)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 9, max: 21 }), fc.nat({ max: 2 ** 45 }), fc.nat(), (clusterBits, offset, raw) => {
        const size = 1 + (raw % 2 ** clusterBits);
        const d = decodeCompressedDescriptor(...encodeCompressedDescriptor(offset, size, clusterBits), clusterBits);
        expect(d.offset).toBe(offset);
        expect(d.size).toBeGreaterThanOrEqual(size);
        expect(d.size - size).toBeLessThan(512);
      }),
      { numRuns: 300 },
    );
  });

  it('spec: standard descriptor bits 1-8 and 56-61 are reserved: such entries are corrupt', () => {
    const format: L2Format = { clusterBits: 16, extendedL2: false, zeroFlag: true };
    expect(() => decodeL2Entry({ hi: 0, lo: 0x10000 | 0x2, bitmapHi: 0, bitmapLo: 0 }, format)).toThrow(
      expect.objectContaining({ code: 'CORRUPT_IMAGE' }),
    );
    expect(() => decodeL2Entry({ hi: 0x01000000, lo: 0x10000, bitmapHi: 0, bitmapLo: 0 }, format)).toThrow(
      expect.objectContaining({ code: 'CORRUPT_IMAGE' }),
    );
  });

  it('spec: host cluster offset "Must be aligned to a cluster boundary": an unaligned one is corrupt', () => {
    const format: L2Format = { clusterBits: 16, extendedL2: false, zeroFlag: true };
    expect(() => decodeL2Entry({ hi: 0, lo: 0x200, bitmapHi: 0, bitmapLo: 0 }, format)).toThrow(/not cluster aligned/);
  });

  it('spec (extended L2): a subcluster that reads as zeroes "must have its allocation status bit unset"', () => {
    const format: L2Format = { clusterBits: 16, extendedL2: true, zeroFlag: false };
    expect(() => decodeL2Entry({ hi: 0, lo: 0x10000, bitmapHi: 1, bitmapLo: 1 }, format)).toThrow(
      expect.objectContaining({ code: 'CORRUPT_IMAGE' }),
    );
  });

  it('L1 entries round-trip and reserved bits are corrupt', () => {
    fc.assert(
      fc.property(fc.integer({ min: 9, max: 21 }), fc.nat({ max: 2 ** 30 }), fc.boolean(), (clusterBits, cluster, copied) => {
        const entry = { offset: cluster * 2 ** clusterBits, copied };
        expect(decodeL1Entry(...encodeL1Entry(entry), clusterBits)).toEqual(entry);
      }),
    );
    expect(() => decodeL1Entry(0x02000000, 0, 16)).toThrow(expect.objectContaining({ code: 'CORRUPT_IMAGE' }));
  });
});
