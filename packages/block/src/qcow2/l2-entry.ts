/**
 * L1 and L2 table entry codecs (qcow2 spec, "Cluster mapping", "Extended L2 Entries").
 *
 * A 64-bit entry is handled as two big-endian 32-bit halves (`hi` = bits 32-63, `lo` = bits 0-31)
 * so that the hot path needs no BigInt. Host offsets are JS numbers; an offset >= 2^53 is
 * reported as corrupt (see MAX_HOST_OFFSET).
 */
import { BlockError } from '../errors.js';

/** Bit 63 of L1 and L2 entries: refcount is exactly one (the cluster may be written in place). */
export const OFLAG_COPIED_HI = 0x80000000;
/** Bit 62 of L2 entries: compressed cluster. */
export const OFLAG_COMPRESSED_HI = 0x40000000;
/** Bit 0 of a standard cluster descriptor: reads as zeroes (v3, not with extended L2). */
export const OFLAG_ZERO_LO = 0x1;

const TWO_32 = 4294967296;
/** Bits 9-55 of an offset: the hi half keeps bits 32-55. */
const OFFSET_HI_MASK = 0x00ffffff;
const OFFSET_LO_MASK = 0xfffffe00;
/** hi half of an offset >= 2^53. */
const OFFSET_HI_LIMIT = 1 << 21;

/** Decodes bits 9-55 as a host offset. Returns -1 when it is >= 2^53. */
export function entryOffset(hi: number, lo: number): number {
  const h = hi & OFFSET_HI_MASK;
  if (h >= OFFSET_HI_LIMIT) return -1;
  return h * TWO_32 + ((lo & OFFSET_LO_MASK) >>> 0);
}

/** Splits a host offset (< 2^53, multiple of 512) into hi/lo halves, without flags. */
export function splitOffset(offset: number): [hi: number, lo: number] {
  return [Math.floor(offset / TWO_32) >>> 0, offset % TWO_32 >>> 0];
}

/** Classification of a (main) L2 entry, as QEMU's QCow2ClusterType. */
export type ClusterKind = 'unallocated' | 'zero-plain' | 'zero-alloc' | 'normal' | 'compressed';

/** A decoded L2 entry. `offset` is the host cluster offset (0 when none). */
export interface L2Entry {
  kind: ClusterKind;
  /** Host cluster offset, or the compressed data's byte offset. */
  offset: number;
  /** Bit 63. */
  copied: boolean;
  /** Compressed clusters: stored byte length (sectors * 512 - offset % 512). */
  compressedSize: number;
  /** Extended L2: allocation bitmap (bits 0-31), zero bitmap (bits 32-63 as a 32-bit number). */
  allocBitmap: number;
  zeroBitmap: number;
}

/** Raw halves of an entry. */
export interface RawL2Entry {
  hi: number;
  lo: number;
  /** Extended L2 only: bitmap halves (hi = zero bits, lo = alloc bits). */
  bitmapHi: number;
  bitmapLo: number;
}

/** Decoding context of an image: what changes how an entry is read. */
export interface L2Format {
  readonly clusterBits: number;
  readonly extendedL2: boolean;
  /** v3 without extended L2: bit 0 is the zero flag. */
  readonly zeroFlag: boolean;
}

function corrupt(message: string, offset?: number): BlockError {
  return new BlockError('CORRUPT_IMAGE', message, offset === undefined ? {} : { offset });
}

/**
 * Decodes an L2 entry. Throws CORRUPT_IMAGE for reserved bits, an unaligned host offset, an
 * offset beyond 2^53 or an extended bitmap that contradicts itself.
 */
export function decodeL2Entry(raw: RawL2Entry, format: L2Format): L2Entry {
  const { hi, lo } = raw;
  const copied = (hi & OFLAG_COPIED_HI) !== 0;
  if ((hi & OFLAG_COMPRESSED_HI) !== 0) {
    const d = decodeCompressedDescriptor(hi, lo, format.clusterBits);
    if (format.extendedL2 && (raw.bitmapHi !== 0 || raw.bitmapLo !== 0)) {
      throw corrupt('compressed cluster with a non-zero subcluster bitmap');
    }
    return { kind: 'compressed', offset: d.offset, copied, compressedSize: d.size, allocBitmap: 0, zeroBitmap: 0 };
  }
  // Reserved: bits 1-8 and 56-61 (bit 0 too, unless it is the zero flag).
  if ((hi & 0x3f000000) !== 0 || (lo & 0x1fe) !== 0) throw corrupt('L2 entry has reserved bits set');
  const offset = entryOffset(hi, lo);
  if (offset < 0) throw corrupt('L2 entry offset beyond 2^53');
  const clusterSize = 2 ** format.clusterBits;
  if (offset % clusterSize !== 0) throw corrupt(`L2 entry offset 0x${offset.toString(16)} not cluster aligned`, offset);
  const zero = format.zeroFlag && (lo & OFLAG_ZERO_LO) !== 0;
  const allocBitmap = format.extendedL2 ? raw.bitmapLo >>> 0 : 0;
  const zeroBitmap = format.extendedL2 ? raw.bitmapHi >>> 0 : 0;
  if (format.extendedL2) {
    // qcow2 spec: a subcluster that reads as zeroes must have its allocation bit unset, and
    // allocated subclusters need a host offset.
    if ((allocBitmap & zeroBitmap) !== 0) throw corrupt('extended L2 entry has subclusters both allocated and zero');
    if (offset === 0 && allocBitmap !== 0) throw corrupt('extended L2 entry has allocated subclusters but no offset');
  }
  let kind: ClusterKind;
  if (offset === 0) kind = zero ? 'zero-plain' : 'unallocated';
  else kind = zero ? 'zero-alloc' : 'normal';
  if (offset === 0 && copied) throw corrupt('L2 entry has the copied flag without an offset');
  return { kind, offset, copied, compressedSize: 0, allocBitmap, zeroBitmap };
}

/** Encodes a decoded entry back to raw halves. Inverse of {@link decodeL2Entry}. */
export function encodeL2Entry(entry: L2Entry, format: L2Format): RawL2Entry {
  if (entry.kind === 'compressed') {
    const [hi, lo] = encodeCompressedDescriptor(entry.offset, entry.compressedSize, format.clusterBits);
    return { hi: (hi | (entry.copied ? OFLAG_COPIED_HI : 0)) >>> 0, lo, bitmapHi: 0, bitmapLo: 0 };
  }
  const [hi, lo] = splitOffset(entry.offset);
  const zero = entry.kind === 'zero-plain' || entry.kind === 'zero-alloc';
  if (zero && !format.zeroFlag) throw new BlockError('INVALID_ARGUMENT', 'zero flag needs a v3 image without extended L2');
  return {
    hi: (hi | (entry.copied ? OFLAG_COPIED_HI : 0)) >>> 0,
    lo: (lo | (zero ? OFLAG_ZERO_LO : 0)) >>> 0,
    bitmapHi: format.extendedL2 ? entry.zeroBitmap >>> 0 : 0,
    bitmapLo: format.extendedL2 ? entry.allocBitmap >>> 0 : 0,
  };
}

/**
 * The compressed cluster descriptor (qcow2 spec, "Compressed Clusters Descriptor"):
 * x = 62 - (cluster_bits - 8); bits 0..x-1 host byte offset, bits x..61 the number of additional
 * 512-byte sectors. Returns the byte offset and the stored length
 * (`(sectors + 1) * 512 - offset % 512`, as QEMU computes it).
 */
export function decodeCompressedDescriptor(hi: number, lo: number, clusterBits: number): { offset: number; size: number } {
  const x = 62 - (clusterBits - 8);
  const hiOffsetBits = x - 32; // 17..29 for cluster_bits 21..9
  const offsetHi = hi & ((1 << hiOffsetBits) - 1);
  if (offsetHi >= OFFSET_HI_LIMIT) throw corrupt('compressed cluster offset beyond 2^53');
  const offset = offsetHi * TWO_32 + (lo >>> 0);
  const sectorsField = (hi >>> hiOffsetBits) & ((1 << (clusterBits - 8)) - 1);
  const size = (sectorsField + 1) * 512 - (offset % 512);
  return { offset, size };
}

/** Inverse of {@link decodeCompressedDescriptor}: `size` is the compressed byte length (> 0). */
export function encodeCompressedDescriptor(offset: number, size: number, clusterBits: number): [hi: number, lo: number] {
  const x = 62 - (clusterBits - 8);
  const hiOffsetBits = x - 32;
  const sectorsField = Math.floor((offset + size - 1) / 512) - Math.floor(offset / 512);
  if (size <= 0 || sectorsField >= 1 << (clusterBits - 8)) {
    throw new BlockError('INVALID_ARGUMENT', `compressed size ${size} does not fit the descriptor`);
  }
  const offsetHi = Math.floor(offset / TWO_32);
  if (offsetHi >= 1 << hiOffsetBits) throw new BlockError('INVALID_ARGUMENT', 'compressed cluster offset too large');
  return [((offsetHi | (sectorsField << hiOffsetBits) | OFLAG_COMPRESSED_HI) >>> 0), offset % TWO_32 >>> 0];
}

/** A decoded L1 entry: the L2 table offset (0: none) and bit 63. */
export interface L1Entry {
  offset: number;
  copied: boolean;
}

/** Decodes an L1 entry; reserved bits (0-8, 56-62) or an unaligned offset are CORRUPT_IMAGE. */
export function decodeL1Entry(hi: number, lo: number, clusterBits: number): L1Entry {
  if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) throw corrupt('L1 entry has reserved bits set');
  const offset = entryOffset(hi, lo);
  if (offset < 0) throw corrupt('L1 entry offset beyond 2^53');
  if (offset % 2 ** clusterBits !== 0) throw corrupt(`L1 entry offset 0x${offset.toString(16)} not cluster aligned`, offset);
  const copied = (hi & OFLAG_COPIED_HI) !== 0;
  return { offset, copied };
}

/** Encodes an L1 entry. */
export function encodeL1Entry(entry: L1Entry): [hi: number, lo: number] {
  const [hi, lo] = splitOffset(entry.offset);
  return [(hi | (entry.copied ? OFLAG_COPIED_HI : 0)) >>> 0, lo];
}
