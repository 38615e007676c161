import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getRefcountEntry, maxRefcount, refcountEntriesPerBlock, setRefcountEntry } from './refcount-block.js';

describe('refcount block entry codecs (refcount_bits 1, 2, 4, 8, 16, 32, 64)', () => {
  for (let order = 0; order <= 6; order++) {
    it(`${1 << order}-bit entries: writes read back and never disturb neighbours`, () => {
      const entries = refcountEntriesPerBlock(9, order);
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.nat(entries - 1), fc.nat()), { maxLength: 64 }), (writes) => {
          const block = new Uint8Array(512);
          const view = new DataView(block.buffer);
          const model = new Map<number, number>();
          const max = maxRefcount(order);
          for (const [index, raw] of writes) {
            const value = order === 6 ? raw : raw % (max + 1);
            setRefcountEntry(block, view, index, order, value);
            model.set(index, value);
          }
          const wrong: number[] = [];
          for (let i = 0; i < entries; i++) if (getRefcountEntry(block, view, i, order) !== (model.get(i) ?? 0)) wrong.push(i);
          expect(wrong).toEqual([]);
        }),
        { numRuns: 50 },
      );
    });
  }

  it('spec: "If refcount_bits implies a sub-byte width, ... bit 0 means the least significant bit"', () => {
    const block = new Uint8Array(512);
    const view = new DataView(block.buffer);
    setRefcountEntry(block, view, 0, 0, 1);
    setRefcountEntry(block, view, 3, 0, 1);
    expect(block[0]).toBe(0b1001);
    setRefcountEntry(block, view, 1, 2, 0xa);
    expect(block[0]).toBe(0xa9);
  });

  it('16-bit entries are big-endian', () => {
    const block = new Uint8Array(512);
    setRefcountEntry(block, new DataView(block.buffer), 1, 4, 0x0102);
    expect([...block.subarray(2, 4)]).toEqual([1, 2]);
  });
});
