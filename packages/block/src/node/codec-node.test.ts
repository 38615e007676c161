import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { BlockError } from '../errors.js';
import { createDeflateCodec } from '../qcow2/compression-deflate.js';
import { createNodeDeflateCodec } from './codec-node.js';

/** Fast byte equality (vitest's deep toEqual is slow on large typed arrays); says where they differ. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) expect(`byte ${i}: ${actual[i]}`).toBe(`byte ${i}: ${expected[i]}`);
  }
}


const cluster = (size: number) =>
  fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 500 })), { minLength: 1, maxLength: 30 }).map((runs) => {
    const out = new Uint8Array(size);
    let at = 0;
    for (let i = 0; at < size; i++) {
      const [byte, run] = runs[i % runs.length]!;
      for (let k = 0; k < run && at < size; k++) out[at++] = (byte ^ (k % 5)) & 0xff;
    }
    return out;
  });

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return BlockError.isInstance(error) ? error.code : `not a BlockError: ${String(error)}`;
  }
}

describe('node:zlib deflate codec', () => {
  const node = createNodeDeflateCodec();
  const pure = createDeflateCodec();

  it('round-trips, and its streams read with the pure codec and vice versa (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(512, 4096, 65536).chain((size) => cluster(size)),
        (data) => {
          const a = node.compress(data)!;
          const b = pure.compress(data)!;
          expectBytes(node.decompress(a, data.length), data);
          expectBytes(pure.decompress(a, data.length), data);
          expectBytes(node.decompress(b, data.length), data);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('accepts and refuses exactly what the pure codec does (padding, truncation, bombs, garbage)', () => {
    const unterminated = deflateRawSync(new Uint8Array(4096).map((_, i) => i % 97), {
      windowBits: 12,
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    const fixed: Uint8Array[] = [unterminated, deflateRawSync(new Uint8Array(1 << 20), { windowBits: 12 })];
    fc.assert(
      fc.property(
        fc.oneof(
          cluster(4096).map((d) => pure.compress(d)!),
          fc.tuple(cluster(4096), fc.uint8Array({ maxLength: 700 })).map(([d, pad]) => {
            const s = pure.compress(d)!;
            const out = new Uint8Array(s.length + pad.length);
            out.set(s);
            out.set(pad, s.length);
            return out;
          }),
          fc.tuple(cluster(4096), fc.nat()).map(([d, n]) => {
            const s = pure.compress(d)!;
            return s.subarray(0, n % s.length);
          }),
          fc.uint8Array({ maxLength: 600 }),
          fc.constantFrom(...fixed),
        ),
        (input) => {
          expect(codeOf(() => node.decompress(input, 4096))).toBe(codeOf(() => pure.decompress(input, 4096)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('both codecs write streams that a window-2^12 inflater reads (QEMU: inflateInit2(-12))', () => {
    fc.assert(
      fc.property(cluster(65536), (data) => {
        // A 32 KiB window fails here with "invalid distance too far back".
        expectBytes(new Uint8Array(inflateRawSync(pure.compress(data)!, { windowBits: 12 })), data);
        expectBytes(new Uint8Array(inflateRawSync(node.compress(data)!, { windowBits: 12 })), data);
      }),
      { numRuns: 5 },
    );
  });

  it('H19: a bomb fails at the cluster size (maxOutputLength), CORRUPT_IMAGE', () => {
    const bomb = deflateRawSync(new Uint8Array(64 << 20), { windowBits: 12 });
    expect(codeOf(() => node.decompress(bomb, 65536))).toBe('CORRUPT_IMAGE');
  });

  it('returns null for incompressible input', () => {
    let x = 7;
    const noise = new Uint8Array(65536).map(() => {
      x = (x * 1664525 + 1013904223) >>> 0;
      return x >>> 24;
    });
    expect(node.compress(noise)).toBeNull();
  });
});
