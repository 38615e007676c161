import { BlockError } from '../errors.js';

/**
 * The zstd frame walker (RFC 8878 §3.1): finds where each frame stored in a qcow2 compressed
 * cluster ends, without decoding it, so that the padding after the last frame is never handed to
 * a decoder and a frame can be refused before anything is allocated for it.
 */

/** RFC 8878 §3.1.1: Magic_Number of a Zstandard frame, little-endian. */
export const ZSTD_MAGIC = 0xfd2fb528;
/** RFC 8878 §3.1.2: skippable frames use the magics 0x184D2A50..0x184D2A5F. */
export const ZSTD_SKIPPABLE_MAGIC_MASK = 0xfffffff0;
export const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
/** RFC 8878 §3.1.1.2.4: Block_Maximum_Size is at most 128 KiB. */
export const ZSTD_BLOCK_SIZE_MAX = 128 * 1024;

/** One frame located in a buffer. */
export interface ZstdFrameInfo {
  /** Byte offset of the frame in the buffer. */
  readonly offset: number;
  /** Total bytes of the frame, headers, blocks and checksum included. */
  readonly length: number;
  /** True for a skippable frame (no content). */
  readonly skippable: boolean;
  /**
   * Frame_Content_Size when the header carries it (RFC 8878 §3.1.1.1.4), else undefined.
   * A number: values above 2^53 are reported as Infinity (they are refused anyway).
   */
  readonly contentSize: number | undefined;
  /**
   * An upper bound of the decoded size computed from the block headers (raw and RLE blocks give
   * their exact size, compressed blocks at most 128 KiB each).
   */
  readonly maxContentSize: number;
}

function corrupt(message: string, offset: number): BlockError {
  return new BlockError('CORRUPT_IMAGE', `zstd: ${message}`, { op: 'decompress', offset });
}

function readU32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

/**
 * Parses the frame starting at `offset`. Throws CORRUPT_IMAGE when the bytes there are not a
 * frame, or when the frame runs past the end of `buf` (a truncated stream).
 */
export function readZstdFrame(buf: Uint8Array, offset: number): ZstdFrameInfo {
  const end = buf.length;
  if (offset + 4 > end) throw corrupt('truncated frame magic', offset);
  const magic = readU32(buf, offset);
  if ((magic & ZSTD_SKIPPABLE_MAGIC_MASK) >>> 0 === ZSTD_SKIPPABLE_MAGIC) {
    // RFC 8878 §3.1.2: Magic_Number, Frame_Size (u32 LE), User_Data.
    if (offset + 8 > end) throw corrupt('truncated skippable frame header', offset);
    const size = readU32(buf, offset + 4);
    if (offset + 8 + size > end) throw corrupt('truncated skippable frame', offset);
    return { offset, length: 8 + size, skippable: true, contentSize: 0, maxContentSize: 0 };
  }
  if (magic !== ZSTD_MAGIC) {
    throw corrupt(`bad frame magic 0x${magic.toString(16)}`, offset);
  }
  let at = offset + 4;
  if (at + 1 > end) throw corrupt('truncated frame header', offset);
  // RFC 8878 §3.1.1.1.1 Frame_Header_Descriptor.
  const fhd = buf[at++]!;
  const fcsFlag = fhd >>> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  const reserved = (fhd & 0x08) !== 0;
  const checksum = (fhd & 0x04) !== 0;
  const dictIdFlag = fhd & 0x03;
  // "Reserved bit ... must be set to zero. A decoder compliant with this specification ... MUST
  // ensure it is not set."
  if (reserved) throw corrupt('reserved bit set in the frame header descriptor', offset);
  const windowDescriptorSize = singleSegment ? 0 : 1;
  const dictIdSize = [0, 1, 2, 4][dictIdFlag]!;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  if (at + windowDescriptorSize + dictIdSize + fcsSize > end) throw corrupt('truncated frame header', offset);
  at += windowDescriptorSize + dictIdSize;
  let contentSize: number | undefined;
  if (fcsSize === 1) contentSize = buf[at]!;
  else if (fcsSize === 2) contentSize = (buf[at]! | (buf[at + 1]! << 8)) + 256; // §3.1.1.1.4: +256
  else if (fcsSize === 4) contentSize = readU32(buf, at);
  else if (fcsSize === 8) {
    const high = readU32(buf, at + 4);
    contentSize = high >= 0x200000 ? Infinity : high * 2 ** 32 + readU32(buf, at);
  }
  at += fcsSize;
  // RFC 8878 §3.1.1.2: blocks, each with a 3-byte little-endian header.
  let maxContentSize = 0;
  for (;;) {
    if (at + 3 > end) throw corrupt('truncated block header', offset);
    const header = buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16);
    at += 3;
    const last = (header & 1) !== 0;
    const blockType = (header >>> 1) & 3;
    const blockSize = header >>> 3;
    if (blockType === 3) throw corrupt('reserved block type', offset);
    if (blockSize > ZSTD_BLOCK_SIZE_MAX) throw corrupt(`block size ${blockSize} exceeds 128 KiB`, offset);
    if (blockType === 1) {
      // RLE_Block: one byte repeated Block_Size times.
      if (at + 1 > end) throw corrupt('truncated RLE block', offset);
      at += 1;
      maxContentSize += blockSize;
    } else {
      if (at + blockSize > end) throw corrupt('truncated block', offset);
      at += blockSize;
      maxContentSize += blockType === 0 ? blockSize : ZSTD_BLOCK_SIZE_MAX;
    }
    if (last) break;
  }
  if (checksum) {
    if (at + 4 > end) throw corrupt('truncated content checksum', offset);
    at += 4;
  }
  return { offset, length: at - offset, skippable: false, contentSize, maxContentSize };
}
