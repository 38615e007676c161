import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BlockError } from '../errors.js';
import type { Qcow2Codec } from './codec.js';
import { createZstdCodec, zstdCompressCluster, zstdDecompressCluster } from './compression-zstd.js';
import { readZstdFrame, ZSTD_BLOCK_SIZE_MAX } from './zstd-frames.js';

/** Fast byte equality (vitest's deep toEqual is slow on large typed arrays); says where they differ. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) expect(`byte ${i}: ${actual[i]}`).toBe(`byte ${i}: ${expected[i]}`);
  }
}


const compressible = (size: number) =>
  fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 400 })), { minLength: 1, maxLength: 30 }).map((runs) => {
    const out = new Uint8Array(size);
    let at = 0;
    for (let i = 0; at < size; i++) {
      const [byte, run] = runs[i % runs.length]!;
      for (let k = 0; k < run && at < size; k++) out[at++] = (byte + (k & 3)) & 0xff;
    }
    return out;
  });

function expectCode(fn: () => unknown, code: BlockError['code']): BlockError {
  try {
    fn();
  } catch (error) {
    expect(BlockError.isInstance(error)).toBe(true);
    expect((error as BlockError).code).toBe(code);
    return error as BlockError;
  }
  throw new Error(`expected BlockError ${code}`);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A frame header: magic, descriptor, optional window descriptor and content size. */
function frameHeader(options: { fcs?: bigint; fcsFlag?: number; singleSegment?: boolean; checksum?: boolean; reserved?: boolean }): Uint8Array {
  const fcsFlag = options.fcsFlag ?? 0;
  const single = options.singleSegment ?? false;
  const fhd = (fcsFlag << 6) | (single ? 0x20 : 0) | (options.reserved === true ? 0x08 : 0) | (options.checksum === true ? 0x04 : 0);
  const bytes = [0x28, 0xb5, 0x2f, 0xfd, fhd];
  if (!single) bytes.push(0x58); // window descriptor: exponent 11 (2^21 = 2 MiB)
  const fcsSize = fcsFlag === 0 ? (single ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  let value = options.fcs ?? 0n;
  if (fcsSize === 2) value -= 256n;
  for (let i = 0; i < fcsSize; i++) bytes.push(Number((value >> BigInt(8 * i)) & 0xffn));
  return new Uint8Array(bytes);
}

/** A block header (RFC 8878 §3.1.1.2): Last_Block, Block_Type, Block_Size. */
function blockHeader(last: boolean, type: number, size: number): Uint8Array {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0);
  return new Uint8Array([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]);
}

describe('qcow2 zstd codec (@bokuweb/zstd-wasm)', () => {
  let codec: Qcow2Codec;
  beforeAll(async () => {
    codec = await createZstdCodec();
  });

  it('round-trips compressible clusters (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(512, 4096, 65536).chain((size) => compressible(size)),
        (cluster) => {
          const stored = codec.compress(cluster);
          expect(stored).not.toBeNull();
          expect(stored!.length).toBeLessThan(cluster.length);
          expectBytes(codec.decompress(stored!, cluster.length), cluster);
          // The frame carries its content size, as QEMU's ZSTD_compressStream2 writes it.
          expect(readZstdFrame(stored!, 0).contentSize).toBe(cluster.length);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('returns null when the frame would not be smaller than the cluster', () => {
    let x = 12345;
    const noise = new Uint8Array(4096).map(() => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x >>> 24;
    });
    expect(zstdCompressCluster(noise)).toBeNull();
  });

  it('decodes several frames in one cluster, skippable frames, and ignores the padding after the cluster is full', () => {
    fc.assert(
      fc.property(compressible(65536), fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 600 }), (cluster, cut, padding) => {
        const a = zstdCompressCluster(cluster.subarray(0, cut)) ?? rawFrame(cluster.subarray(0, cut));
        const b = zstdCompressCluster(cluster.subarray(cut)) ?? rawFrame(cluster.subarray(cut));
        const skippable = new Uint8Array([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        expectBytes(zstdDecompressCluster(concat(a, skippable, b, padding), 65536), cluster);
      }),
      { numRuns: 12 },
    );
  });

  it('H19: a frame declaring a content size larger than the cluster is refused from its header', () => {
    for (const [fcsFlag, fcs] of [
      [3, 1n << 40n],
      [3, (1n << 64n) - 1n],
      [2, 1n << 31n],
      [2, 0xffffffffn],
      [1, 65791n],
    ] as const) {
      const frame = concat(frameHeader({ fcsFlag, fcs }), blockHeader(true, 0, 4), new Uint8Array(4));
      const error = expectCode(() => zstdDecompressCluster(frame, 65536), 'CORRUPT_IMAGE');
      expect(error.message).toMatch(/declares/);
    }
  });

  it('H19: a frame without a content size that decodes past the cluster is CORRUPT_IMAGE', () => {
    // Two raw blocks of 400 bytes into a 512-byte cluster.
    const frame = concat(frameHeader({}), blockHeader(false, 0, 400), new Uint8Array(400), blockHeader(true, 0, 400), new Uint8Array(400));
    expectCode(() => zstdDecompressCluster(frame, 512), 'CORRUPT_IMAGE');
    // An RLE block of 1 MiB... in 128 KiB pieces: the header bound refuses blocks over 128 KiB.
    const rle = concat(frameHeader({}), blockHeader(true, 1, ZSTD_BLOCK_SIZE_MAX), new Uint8Array([7]));
    expectCode(() => zstdDecompressCluster(rle, 4096), 'CORRUPT_IMAGE');
  });

  it('H19: a truncated frame or a stream that ends before the cluster is full is CORRUPT_IMAGE', () => {
    fc.assert(
      fc.property(compressible(65536), fc.double({ min: 0, max: 0.99, noNaN: true }), (cluster, cut) => {
        const stored = zstdCompressCluster(cluster)!;
        expectCode(() => zstdDecompressCluster(stored.subarray(0, Math.floor(stored.length * cut)), 65536), 'CORRUPT_IMAGE');
      }),
      { numRuns: 30 },
    );
    const half = zstdCompressCluster(new Uint8Array(2048))!;
    expectCode(() => zstdDecompressCluster(concat(half, new Uint8Array(512)), 4096), 'CORRUPT_IMAGE');
  });

  it('wraps the library error text ("Failed to compress") in a CORRUPT_IMAGE with the cause', () => {
    // A well-formed frame whose compressed block is garbage: the walker passes it, the decoder fails.
    const frame = concat(frameHeader({ singleSegment: true, fcs: 200n }), blockHeader(true, 2, 6), new Uint8Array(6).fill(0xff));
    const error = expectCode(() => zstdDecompressCluster(frame, 512), 'CORRUPT_IMAGE');
    expect(error.message).not.toMatch(/compress with/);
    expect(String((error.cause as Error).message)).toMatch(/Failed to compress/);
  });

  it('H19: arbitrary bytes give a cluster or CORRUPT_IMAGE, never another error (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1024 }), fc.boolean(), (bytes, withMagic) => {
        const input = withMagic ? concat(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]), bytes) : bytes;
        try {
          expect(zstdDecompressCluster(input, 4096).length).toBe(4096);
        } catch (error) {
          expect(BlockError.isInstance(error) && error.code === 'CORRUPT_IMAGE').toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('RFC 8878 §3.1.1 frame walker', () => {
  it('§3.1.1.1.4: reads Frame_Content_Size of 1, 2 (+256), 4 and 8 bytes', () => {
    const body = concat(blockHeader(true, 0, 0));
    expect(readZstdFrame(concat(frameHeader({ singleSegment: true, fcs: 200n }), body), 0).contentSize).toBe(200);
    expect(readZstdFrame(concat(frameHeader({ fcsFlag: 1, fcs: 300n }), body), 0).contentSize).toBe(300);
    expect(readZstdFrame(concat(frameHeader({ fcsFlag: 2, fcs: 70000n }), body), 0).contentSize).toBe(70000);
    expect(readZstdFrame(concat(frameHeader({ fcsFlag: 3, fcs: 1n << 40n }), body), 0).contentSize).toBe(2 ** 40);
    expect(readZstdFrame(concat(frameHeader({}), body), 0).contentSize).toBeUndefined();
  });

  it('§3.1.1.1.1: the reserved bit MUST be checked; §3.1.1.2.2: block type 3 is reserved', () => {
    expectCode(() => readZstdFrame(concat(frameHeader({ reserved: true }), blockHeader(true, 0, 0)), 0), 'CORRUPT_IMAGE');
    expectCode(() => readZstdFrame(concat(frameHeader({}), blockHeader(true, 3, 0)), 0), 'CORRUPT_IMAGE');
  });

  it('measures a frame exactly: blocks, RLE byte and the 4-byte checksum', () => {
    const frame = concat(
      frameHeader({ checksum: true }),
      blockHeader(false, 0, 5),
      new Uint8Array(5),
      blockHeader(false, 1, 100),
      new Uint8Array([9]),
      blockHeader(true, 2, 7),
      new Uint8Array(7),
      new Uint8Array(4),
    );
    const info = readZstdFrame(concat(frame, new Uint8Array(33)), 0);
    expect(info.length).toBe(frame.length);
    expect(info.maxContentSize).toBe(5 + 100 + ZSTD_BLOCK_SIZE_MAX);
  });
});

/** A frame of raw blocks holding `data` (for parts that zstd would not shrink). */
function rawFrame(data: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [frameHeader({ fcsFlag: 3, fcs: BigInt(data.length) })];
  if (data.length === 0) parts.push(blockHeader(true, 0, 0));
  for (let at = 0; at < data.length; at += ZSTD_BLOCK_SIZE_MAX) {
    const piece = data.subarray(at, at + ZSTD_BLOCK_SIZE_MAX);
    parts.push(blockHeader(at + piece.length >= data.length, 0, piece.length), piece);
  }
  return concat(...parts);
}
