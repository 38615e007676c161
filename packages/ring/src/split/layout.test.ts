import { GuestMemory } from '@virtio-ts/memory';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingError } from '../errors.js';
import {
  availEventAddress,
  availRingSize,
  descTableSize,
  isValidSplitQueueSize,
  splitQueueFootprint,
  splitQueueLayout,
  usedEventAddress,
  usedRingSize,
  validateSplitLayout,
} from './layout.js';

describe('split queue layout (VIRTIO 1.3 §2.7)', () => {
  it('2.7: part sizes are 16*n, 6+2*n and 6+8*n bytes', () => {
    expect(descTableSize(256)).toBe(4096);
    expect(availRingSize(256)).toBe(518);
    expect(usedRingSize(256)).toBe(2054);
  });

  it('2.7: queue size is a power of two in 1..32768', () => {
    for (const size of [1, 2, 256, 32768]) expect(isValidSplitQueueSize(size)).toBe(true);
    for (const size of [0, 3, 255, 65536, -1, 1.5, Number.NaN]) expect(isValidSplitQueueSize(size)).toBe(false);
  });

  it('places the areas contiguously with alignments 16, 2 and 4', () => {
    expect(splitQueueLayout(256, 0x1000)).toEqual({ size: 256, descTable: 0x1000, availRing: 0x2000, usedRing: 0x2208 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.nat({ max: 1 << 30 }), (log2, base) => {
        const size = 1 << log2;
        const l = splitQueueLayout(size, base);
        expect(l.descTable % 16).toBe(0);
        expect(l.availRing % 2).toBe(0);
        expect(l.usedRing % 4).toBe(0);
        expect(l.descTable).toBeGreaterThanOrEqual(base);
        expect(l.availRing).toBeGreaterThanOrEqual(l.descTable + descTableSize(size));
        expect(l.usedRing).toBeGreaterThanOrEqual(l.availRing + availRingSize(size));
        expect(l.usedRing + usedRingSize(size) - l.descTable).toBe(splitQueueFootprint(size));
        expect(usedEventAddress(l)).toBe(l.availRing + 4 + 2 * size);
        expect(availEventAddress(l)).toBe(l.usedRing + 4 + 8 * size);
      }),
      { numRuns: 100 },
    );
  });

  it('rejects bad sizes and bases with INVALID_LAYOUT', () => {
    expect(() => splitQueueLayout(3, 0)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => splitQueueLayout(16, -1)).toThrow(RingError);
  });

  it('2.7: "each area must be aligned", and inside one guest memory region', () => {
    const memory = GuestMemory.create([
      { guestAddress: 0, size: 0x4000 },
      { guestAddress: 0x4000, size: 0x4000 },
    ]);
    const good = splitQueueLayout(64, 0);
    expect(validateSplitLayout(good, memory).descRegion.start).toBe(0);
    const cases = [
      { ...good, descTable: 8 }, // misaligned
      { ...good, availRing: good.availRing + 1 },
      { ...good, usedRing: good.usedRing + 2 },
      { ...good, size: 48 },
      { ...good, usedRing: 0x4000 - 8 }, // spans two regions
      { ...good, usedRing: 0x10000 }, // unmapped
      { ...good, descTable: 2 ** 53 },
    ];
    for (const layout of cases) expect(() => validateSplitLayout(layout, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
  });
});
