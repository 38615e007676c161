import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { completeChecksum, internetChecksum, onesComplementSum } from './net-checksum.js';

describe('internet checksum (RFC 1071)', () => {
  it('matches the RFC 1071 worked example', () => {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    expect(onesComplementSum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7))).toBe(0xddf2);
    expect(internetChecksum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7))).toBe(0x220d);
  });

  it('property: data with its checksum appended sums to 0xffff (odd lengths padded)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (data) => {
        const even = data.length % 2 === 0 ? data : Uint8Array.from([...data, 0]);
        const c = internetChecksum(even);
        const withSum = Uint8Array.from([...even, c >>> 8, c & 0xff]);
        expect(onesComplementSum(withSum)).toBe(0xffff);
      }),
      { numRuns: 200 },
    );
  });

  it('property: completeChecksum makes the range from csum_start verify, and refuses offsets outside the frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 600 }), fc.nat(), fc.nat(), (frame, a, b) => {
        const copy = frame.slice();
        const start = a % (frame.length + 4);
        const offset = b % (frame.length + 4);
        const ok = completeChecksum(copy, start, offset);
        expect(ok).toBe(start < frame.length && start + offset + 2 <= frame.length);
        // The field held the pseudo-header sum P: a receiver adds P back and must get 0xffff. (The
        // field sits at an even distance from csum_start in every real protocol: TCP 16, UDP 6.)
        if (ok && offset % 2 === 0) {
          const p = (frame[start + offset]! << 8) | frame[start + offset + 1]!;
          expect(onesComplementSum(copy.subarray(start), p)).toBe(0xffff);
        }
        if (!ok) expect(copy).toEqual(frame);
      }),
      { numRuns: 300 },
    );
  });

  it('a huge buffer does not overflow the accumulator', () => {
    const big = new Uint8Array(1 << 20).fill(0xff);
    expect(onesComplementSum(big)).toBe(0xffff);
  });
});
