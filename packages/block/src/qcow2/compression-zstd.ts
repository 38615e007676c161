import { compress as zstdCompress, decompress as zstdDecompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import { BlockError } from '../errors.js';
import type { Qcow2Codec } from './codec.js';
import { checkClusterSize } from './compression-deflate.js';
import { readZstdFrame } from './zstd-frames.js';

/** zstd's default level (ZSTD_CLEVEL_DEFAULT), which QEMU uses. */
const ZSTD_LEVEL = 3;

let ready: Promise<void> | undefined;

function initOnce(): Promise<void> {
  ready ??= zstdInit().catch((error: unknown) => {
    ready = undefined;
    throw new BlockError('UNSUPPORTED', 'zstd: the WebAssembly decoder failed to load', { op: 'init' }, { cause: error });
  });
  return ready;
}

/**
 * Compresses one cluster into a single zstd frame (with its content size). Returns null when the
 * frame would not be smaller than the cluster (QEMU: -ENOMEM, stored uncompressed).
 */
export function zstdCompressCluster(cluster: Uint8Array): Uint8Array | null {
  let frame: Uint8Array;
  try {
    frame = zstdCompress(cluster, ZSTD_LEVEL);
  } catch (error) {
    throw new BlockError('IO', 'zstd: compression failed', { op: 'compress', length: cluster.length }, { cause: error });
  }
  return frame.length < cluster.length ? frame : null;
}

/**
 * Decodes the bytes stored for one zstd-compressed cluster into exactly `clusterSize` bytes, with
 * QEMU's rule (qcow2_zstd_decompress): frames are decoded one after another until the cluster is
 * full; what follows is padding. A frame that would overflow the cluster (its declared content
 * size, or its decoded size), a truncated frame, or input that ends before the cluster is full is
 * CORRUPT_IMAGE. Nothing is allocated beyond the cluster: a frame is refused from its header
 * before the decoder sees it.
 */
export function zstdDecompressCluster(input: Uint8Array, clusterSize: number): Uint8Array {
  checkClusterSize(clusterSize, 'decompress');
  const output = new Uint8Array(clusterSize);
  let produced = 0;
  let at = 0;
  while (produced < clusterSize) {
    if (at >= input.length) {
      throw new BlockError('CORRUPT_IMAGE', `zstd: stream ends after ${produced} of ${clusterSize} bytes`, {
        op: 'decompress',
        offset: at,
      });
    }
    const frame = readZstdFrame(input, at);
    at += frame.length;
    if (frame.skippable) continue;
    const room = clusterSize - produced;
    if (frame.contentSize !== undefined && frame.contentSize > room) {
      throw new BlockError(
        'CORRUPT_IMAGE',
        `zstd: frame declares ${frame.contentSize} bytes of content, more than the ${room} left in the cluster`,
        { op: 'decompress', offset: frame.offset },
      );
    }
    let decoded: Uint8Array;
    try {
      // With no declared content size the decoder's output buffer is `room` bytes, so a frame
      // that inflates further fails there (dstSize_tooSmall) instead of allocating.
      decoded = zstdDecompress(input.subarray(frame.offset, frame.offset + frame.length), { defaultHeapSize: room });
    } catch (error) {
      // The library says "Failed to compress" for decoding errors: replace its text.
      throw new BlockError('CORRUPT_IMAGE', 'zstd: invalid compressed frame', { op: 'decompress', offset: frame.offset }, { cause: error });
    }
    if (decoded.length > room) {
      throw new BlockError('CORRUPT_IMAGE', 'zstd: frame inflates past the cluster size', {
        op: 'decompress',
        offset: frame.offset,
      });
    }
    if (frame.contentSize !== undefined && decoded.length !== frame.contentSize) {
      throw new BlockError('CORRUPT_IMAGE', 'zstd: frame content size does not match its header', {
        op: 'decompress',
        offset: frame.offset,
      });
    }
    output.set(decoded, produced);
    produced += decoded.length;
  }
  return output;
}

/**
 * qcow2 `compression_type` 1: zstd, via `@bokuweb/zstd-wasm` (runs in Node and browsers). Async
 * because the WebAssembly module loads once; later calls are immediate.
 *
 * @example
 * ```ts
 * const codec = await createZstdCodec();
 * const stored = codec.compress(cluster);
 * const back = stored === null ? cluster : codec.decompress(stored, cluster.length);
 * ```
 */
export async function createZstdCodec(): Promise<Qcow2Codec> {
  await initOnce();
  return { type: 'zstd', compress: zstdCompressCluster, decompress: zstdDecompressCluster };
}
