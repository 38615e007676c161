import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isZero } from './copy.js';

describe('isZero', () => {
  it('agrees with a byte-by-byte scan, at any offset and length (also past 64 KiB)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200_000 }), fc.nat(7), fc.option(fc.nat(), { nil: undefined }), (length, start, poke) => {
        const backing = new Uint8Array(length + start + 8).fill(9);
        const view = backing.subarray(start, start + length);
        view.fill(0);
        if (poke !== undefined && length > 0) view[poke % length] = 1 + (poke % 255);
        expect(isZero(view)).toBe(view.every((b) => b === 0));
      }),
      { numRuns: 200 },
    );
  });
});
