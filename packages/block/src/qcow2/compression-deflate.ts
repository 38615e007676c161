import { ZStream, Z_BUF_ERROR, Z_FINISH, Z_OK, Z_STREAM_END, zlibDeflate, zlibDeflateEnd, zlibDeflateInit2, zlibInflate, zlibInflateEnd, zlibInflateInit2 } from 'pako';
import { BlockError } from '../errors.js';
import type { Qcow2Codec } from './codec.js';

/**
 * qcow2 `compression_type` 0: raw deflate (RFC 1951) with a 4 KiB window (windowBits 12), as QEMU
 * writes it (block/qcow2-threads.c: `deflateInit2(..., -12, 9, Z_DEFAULT_STRATEGY)`).
 *
 * The window must be 4 KiB: QEMU inflates with `inflateInit2(-12)` and rejects any back-reference
 * further than 4 KiB ("invalid distance too far back"). fflate and CompressionStream always use a
 * 32 KiB window, so they must never write qcow2 clusters.
 */
const WINDOW_BITS = 12;
const Z_DEFAULT_COMPRESSION = -1;
const Z_DEFLATED = 8;
const MEM_LEVEL = 9;
const Z_DEFAULT_STRATEGY = 0;

/** Largest qcow2 cluster (cluster_bits 21): decompress refuses a larger target. */
export const MAX_CLUSTER_SIZE = 2 * 1024 * 1024;
/** Smallest qcow2 cluster (cluster_bits 9). */
export const MIN_CLUSTER_SIZE = 512;

/** Validates the cluster size a caller passes to `decompress` (it sizes an allocation). */
export function checkClusterSize(clusterSize: number, op: string): void {
  if (
    !Number.isInteger(clusterSize) ||
    clusterSize < MIN_CLUSTER_SIZE ||
    clusterSize > MAX_CLUSTER_SIZE ||
    (clusterSize & (clusterSize - 1)) !== 0
  ) {
    throw new BlockError('INVALID_ARGUMENT', `cluster size ${clusterSize} is not a power of two in [512, 2 MiB]`, { op });
  }
}

/**
 * Compresses one cluster like QEMU: level 6, window 2^12, memLevel 9, into at most
 * `cluster.length - 1` bytes. Returns null when the stream does not fit (QEMU: -ENOMEM, the
 * cluster is then written uncompressed).
 */
export function deflateCluster(cluster: Uint8Array): Uint8Array | null {
  const limit = cluster.length - 1;
  if (limit <= 0) return null;
  const strm = new ZStream();
  const init = zlibDeflateInit2(strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -WINDOW_BITS, MEM_LEVEL, Z_DEFAULT_STRATEGY);
  if (init !== Z_OK) throw new BlockError('IO', `deflateInit2 failed (${init})`, { op: 'compress' });
  strm.input = cluster;
  strm.next_in = 0;
  strm.avail_in = cluster.length;
  strm.output = new Uint8Array(limit);
  strm.next_out = 0;
  strm.avail_out = limit;
  const ret = zlibDeflate(strm, Z_FINISH);
  const produced = limit - strm.avail_out;
  const output = strm.output;
  zlibDeflateEnd(strm);
  // Z_STREAM_END: the whole stream fit. Z_OK: the output buffer filled first (does not fit).
  if (ret === Z_STREAM_END) return output.slice(0, produced);
  if (ret === Z_OK || ret === Z_BUF_ERROR) return null;
  throw new BlockError('IO', `deflate failed (${ret})`, { op: 'compress' });
}

/**
 * Inflates the bytes stored for one compressed cluster into exactly `clusterSize` bytes, with
 * QEMU's acceptance rule (qcow2_decompress): the output must be filled; the input may be consumed
 * only in part, because the stored length is rounded up to a 512-byte sector and what follows the
 * stream is padding.
 *
 * Stricter than QEMU in one point: a stream whose content continues past the cluster (a bomb, or
 * an image QEMU never writes) is CORRUPT_IMAGE here, where QEMU silently truncates it.
 */
export function inflateCluster(input: Uint8Array, clusterSize: number): Uint8Array {
  checkClusterSize(clusterSize, 'decompress');
  const strm = new ZStream();
  const init = zlibInflateInit2(strm, -WINDOW_BITS);
  if (init !== Z_OK) throw new BlockError('IO', `inflateInit2 failed (${init})`, { op: 'decompress' });
  strm.input = input;
  strm.next_in = 0;
  strm.avail_in = input.length;
  strm.output = new Uint8Array(clusterSize);
  strm.next_out = 0;
  strm.avail_out = clusterSize;
  try {
    const ret = zlibInflate(strm, Z_FINISH);
    const output = strm.output;
    const filled = strm.avail_out === 0;
    if (ret === Z_STREAM_END && filled) return output;
    if ((ret === Z_BUF_ERROR || ret === Z_OK) && filled) {
      // The stream has not ended: it may end at the next code (then what follows is padding),
      // or it may carry more content than the cluster holds. Offer one more byte to find out.
      strm.output = new Uint8Array(1);
      strm.next_out = 0;
      strm.avail_out = 1;
      zlibInflate(strm, Z_FINISH);
      if (strm.avail_out === 0) {
        throw new BlockError('CORRUPT_IMAGE', 'compressed cluster inflates past the cluster size', {
          op: 'decompress',
          length: input.length,
        });
      }
      return output;
    }
    if (!filled && (ret === Z_STREAM_END || ret === Z_BUF_ERROR || ret === Z_OK)) {
      throw new BlockError(
        'CORRUPT_IMAGE',
        `compressed cluster inflates to ${clusterSize - strm.avail_out} of ${clusterSize} bytes (truncated stream)`,
        { op: 'decompress', length: input.length },
      );
    }
    throw new BlockError('CORRUPT_IMAGE', `invalid deflate stream: ${strm.msg || `code ${ret}`}`, {
      op: 'decompress',
      length: input.length,
    });
  } finally {
    zlibInflateEnd(strm);
  }
}

/**
 * The pure deflate codec (pako), for every runtime. Node has a faster one in
 * `@virtio-ts/block/node` (`createNodeDeflateCodec`).
 *
 * @example
 * ```ts
 * const codec = createDeflateCodec();
 * const stored = codec.compress(cluster); // null: store uncompressed
 * const back = codec.decompress(stored!, cluster.length);
 * ```
 */
export function createDeflateCodec(): Qcow2Codec {
  return {
    type: 'deflate',
    compress: deflateCluster,
    decompress: inflateCluster,
  };
}
