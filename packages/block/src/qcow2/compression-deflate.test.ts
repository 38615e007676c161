import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { deflateRaw, ZStream, Z_SYNC_FLUSH, zlibDeflate, zlibDeflateEnd, zlibDeflateInit2 } from 'pako';
import { BlockError } from '../errors.js';
import { createDeflateCodec, deflateCluster, inflateCluster } from './compression-deflate.js';

/** Fast byte equality (vitest's deep toEqual is slow on large typed arrays); says where they differ. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) expect(`byte ${i}: ${actual[i]}`).toBe(`byte ${i}: ${expected[i]}`);
  }
}


/** A cluster that compresses: runs, repeats and a little noise. */
const compressibleCluster = (size: number) =>
  fc
    .array(fc.record({ byte: fc.integer({ min: 0, max: 255 }), run: fc.integer({ min: 1, max: 300 }), noise: fc.boolean() }), {
      minLength: 1,
      maxLength: 40,
    })
    .map((runs) => {
      const out = new Uint8Array(size);
      let at = 0;
      let i = 0;
      while (at < size) {
        const r = runs[i++ % runs.length]!;
        for (let k = 0; k < r.run && at < size; k++) out[at++] = r.noise ? (r.byte * 31 + k * 7) & 0xff : r.byte;
      }
      return out;
    });

const clusterSizes = fc.constantFrom(512, 4096, 65536);

function expectCode(fn: () => unknown, code: BlockError['code']): void {
  try {
    fn();
  } catch (error) {
    expect(BlockError.isInstance(error)).toBe(true);
    expect((error as BlockError).code).toBe(code);
    return;
  }
  throw new Error(`expected BlockError ${code}`);
}

describe('qcow2 deflate codec (pako, window 2^12)', () => {
  const codec = createDeflateCodec();

  it('round-trips compressible clusters (property)', () => {
    fc.assert(
      fc.property(
        clusterSizes.chain((size) => compressibleCluster(size)),
        (cluster) => {
          const stored = codec.compress(cluster);
          expect(stored).not.toBeNull();
          expect(stored!.length).toBeLessThan(cluster.length);
          expectBytes(codec.decompress(stored!, cluster.length), cluster);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('returns null for an incompressible cluster (QEMU then writes it uncompressed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.integer(), (bytes, seed) => {
        // Mix in a PRNG so the cluster is high-entropy.
        let x = seed | 1;
        const cluster = bytes.map((b) => {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          return (b ^ x) & 0xff;
        });
        const stored = deflateCluster(cluster);
        if (stored !== null) expect(stored.length).toBeLessThan(cluster.length);
      }),
      { numRuns: 20 },
    );
  });

  it('accepts a stream followed by padding (the stored length is rounded up to 512 bytes)', () => {
    fc.assert(
      fc.property(compressibleCluster(4096), fc.uint8Array({ minLength: 0, maxLength: 1024 }), (cluster, padding) => {
        const stored = deflateCluster(cluster)!;
        const padded = new Uint8Array(stored.length + padding.length);
        padded.set(stored);
        padded.set(padding, stored.length);
        expectBytes(inflateCluster(padded, 4096), cluster);
      }),
      { numRuns: 30 },
    );
  });

  it('accepts an unterminated stream that fills the cluster (QEMU approves Z_BUF_ERROR with a full buffer)', () => {
    const cluster = new Uint8Array(65536).map((_, i) => (i * 7) % 251);
    // Z_SYNC_FLUSH instead of Z_FINISH: the stream never sets BFINAL.
    const strm = new ZStream();
    zlibDeflateInit2(strm, 6, 8, -12, 9, 0);
    strm.input = cluster;
    strm.next_in = 0;
    strm.avail_in = cluster.length;
    strm.output = new Uint8Array(70000);
    strm.next_out = 0;
    strm.avail_out = 70000;
    zlibDeflate(strm, Z_SYNC_FLUSH);
    const unterminated = strm.output.slice(0, 70000 - strm.avail_out);
    zlibDeflateEnd(strm);
    expectBytes(inflateCluster(unterminated, 65536), cluster);
  });

  it('H19: a stream that inflates past the cluster is CORRUPT_IMAGE (bomb)', () => {
    const bomb = deflateCluster(new Uint8Array(8192))!; // 8 KiB of zeroes into a 4 KiB cluster
    expectCode(() => inflateCluster(bomb, 4096), 'CORRUPT_IMAGE');
    const huge = deflateRaw(new Uint8Array(16 << 20), { windowBits: 12 }); // 16 MiB of zeroes
    expectCode(() => inflateCluster(huge, 65536), 'CORRUPT_IMAGE');
  });

  it('H19: a truncated stream or one that ends short is CORRUPT_IMAGE', () => {
    fc.assert(
      fc.property(compressibleCluster(65536), fc.double({ min: 0, max: 0.95, noNaN: true }), (cluster, cut) => {
        const stored = deflateCluster(cluster)!;
        expectCode(() => inflateCluster(stored.subarray(0, Math.floor(stored.length * cut)), 65536), 'CORRUPT_IMAGE');
      }),
      { numRuns: 30 },
    );
    const short = deflateCluster(new Uint8Array(4096).fill(1))!;
    expectCode(() => inflateCluster(short, 8192), 'CORRUPT_IMAGE');
  });

  it('H19: arbitrary bytes give a cluster or CORRUPT_IMAGE, never another error (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        try {
          expect(inflateCluster(bytes, 512).length).toBe(512);
        } catch (error) {
          expect(BlockError.isInstance(error) && error.code === 'CORRUPT_IMAGE').toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a cluster size outside qcow2 cluster_bits 9..21 (INVALID_ARGUMENT)', () => {
    for (const size of [0, 256, 1000, 4 << 20, -1, Number.NaN]) expectCode(() => inflateCluster(new Uint8Array(4), size), 'INVALID_ARGUMENT');
  });
});
