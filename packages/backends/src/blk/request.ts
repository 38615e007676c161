import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain, Segment } from '@virtio-ts/ring';
import { gather, sliceSegments } from '../chain-io.js';
import {
  DISCARD_SEGMENT_SIZE,
  REQUEST_HEADER_SIZE,
  SECTOR_SIZE,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from './constants.js';
import type { BlkFault } from './errors.js';

/** One `struct virtio_blk_discard_write_zeroes` (VIRTIO 1.3 §5.2.6), decoded. */
export interface DiscardRange {
  readonly sector: number;
  readonly numSectors: number;
  readonly unmap: boolean;
}

/** A validated virtio-blk request, ready to execute. Segments alias guest memory. */
export type BlkRequest =
  | { readonly type: 'in'; readonly sector: number; readonly data: readonly Segment[]; readonly dataLength: number }
  | { readonly type: 'out'; readonly sector: number; readonly data: readonly Segment[]; readonly dataLength: number }
  | { readonly type: 'flush' }
  | { readonly type: 'get-id'; readonly data: readonly Segment[]; readonly dataLength: number }
  | { readonly type: 'discard'; readonly ranges: readonly DiscardRange[] }
  | { readonly type: 'write-zeroes'; readonly ranges: readonly DiscardRange[] };

/** What {@link parseRequest} needs to know about the device. */
export interface RequestLimits {
  /** Disk size in 512-byte sectors. */
  readonly capacitySectors: number;
  readonly readOnly: boolean;
  /** Every byte offset and length must be a multiple of this (the backend's request alignment, >= 512). */
  readonly alignment: number;
  /** Largest IN/OUT data length accepted (bounds every buffer the device allocates). */
  readonly maxDataBytes: number;
  readonly flush: boolean;
  readonly discard: boolean;
  readonly writeZeroes: boolean;
  readonly maxDiscardSeg: number;
  readonly maxDiscardSectors: number;
  readonly maxWriteZeroesSeg: number;
  readonly maxWriteZeroesSectors: number;
}

/** The result of parsing a chain: a request, or the fault to report. */
export type ParseResult =
  | { readonly kind: 'request'; readonly request: BlkRequest; readonly statusAddress: number }
  | {
      readonly kind: 'fault';
      readonly fault: BlkFault;
      /** Where the status byte goes, or null when the chain has no writable byte. */
      readonly statusAddress: number | null;
      /** The request type from the header, when there was a header. */
      readonly requestType: number | null;
    };

/** The decoded 16-byte request header (§5.2.6 `struct virtio_blk_req`). */
export interface RequestHeader {
  readonly type: number;
  readonly reserved: number;
  readonly sector: bigint;
}

/** Encodes a request header (little-endian, §5.2.6). */
export function encodeRequestHeader(header: RequestHeader): Uint8Array {
  const bytes = new Uint8Array(REQUEST_HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, header.type, true);
  view.setUint32(4, header.reserved, true);
  view.setBigUint64(8, header.sector, true);
  return bytes;
}

/** Decodes a request header from its 16 bytes. */
export function decodeRequestHeader(bytes: Uint8Array): RequestHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, REQUEST_HEADER_SIZE);
  return { type: view.getUint32(0, true), reserved: view.getUint32(4, true), sector: view.getBigUint64(8, true) };
}

/** A raw discard/write-zeroes segment as the guest wrote it (flags kept whole, reserved bits included). */
export interface RawDiscardSegment {
  readonly sector: bigint;
  readonly numSectors: number;
  readonly flags: number;
}

/** Encodes discard/write-zeroes segments (16 bytes each, §5.2.6). */
export function encodeDiscardSegments(segments: readonly RawDiscardSegment[]): Uint8Array {
  const bytes = new Uint8Array(segments.length * DISCARD_SEGMENT_SIZE);
  const view = new DataView(bytes.buffer);
  segments.forEach((s, i) => {
    view.setBigUint64(i * DISCARD_SEGMENT_SIZE, s.sector, true);
    view.setUint32(i * DISCARD_SEGMENT_SIZE + 8, s.numSectors, true);
    view.setUint32(i * DISCARD_SEGMENT_SIZE + 12, s.flags, true);
  });
  return bytes;
}

/** Decodes discard/write-zeroes segments; `bytes.length` must be a multiple of 16. */
export function decodeDiscardSegments(bytes: Uint8Array): RawDiscardSegment[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: RawDiscardSegment[] = [];
  for (let o = 0; o + DISCARD_SEGMENT_SIZE <= bytes.length; o += DISCARD_SEGMENT_SIZE) {
    out.push({ sector: view.getBigUint64(o, true), numSectors: view.getUint32(o + 8, true), flags: view.getUint32(o + 12, true) });
  }
  return out;
}

/**
 * Parses a popped chain into a {@link BlkRequest}, validating everything the (untrusted) guest
 * controls. The framing is free (§2.6.4): the header is the first 16 readable bytes wherever
 * the descriptors split them, the status is the last writable byte, and data is what lies in
 * between. Never throws for guest input; a memory error (guest memory changed under the ring)
 * propagates to the caller, which treats it as a ring error.
 */
export function parseRequest(memory: GuestMemory, chain: DescriptorChain, limits: RequestLimits): ParseResult {
  // §5.2.6: the status is the last byte the device writes. No writable byte, no answer.
  const statusAddress = lastWritableByte(chain.writable);
  if (statusAddress === null) return { kind: 'fault', fault: 'NO_STATUS_BYTE', statusAddress: null, requestType: null };
  const fault = (f: BlkFault, requestType: number | null = null): ParseResult => ({ kind: 'fault', fault: f, statusAddress, requestType });

  // H7: a header in a write-only descriptor leaves fewer than 16 readable bytes.
  if (chain.readableLength < REQUEST_HEADER_SIZE) return fault('HEADER_TOO_SHORT');
  const headerBytes = new Uint8Array(REQUEST_HEADER_SIZE);
  gather(memory, sliceSegments(chain.readable, 0, REQUEST_HEADER_SIZE), headerBytes);
  const header = decodeRequestHeader(headerBytes);
  const type = header.type;

  const readableDataLength = chain.readableLength - REQUEST_HEADER_SIZE;
  const writableDataLength = chain.writableLength - 1;
  const readableData = () => sliceSegments(chain.readable, REQUEST_HEADER_SIZE, readableDataLength);
  const writableData = () => sliceSegments(chain.writable, 0, writableDataLength);

  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const isRead = type === VIRTIO_BLK_T_IN;
      // Data must flow in the request's direction only.
      if ((isRead ? readableDataLength : writableDataLength) !== 0) return fault('UNEXPECTED_DATA', type);
      // §5.2.6.2: IOERR for a write on a read-only device, and no data written.
      if (!isRead && limits.readOnly) return fault('READ_ONLY', type);
      const dataLength = isRead ? writableDataLength : readableDataLength;
      // §5.2.6.1: the data length MUST be a multiple of 512 (H9: a READ shorter than its sectors).
      if (dataLength % SECTOR_SIZE !== 0) return fault('BAD_DATA_LENGTH', type);
      if (dataLength > limits.maxDataBytes) return fault('REQUEST_TOO_LARGE', type);
      const sector = checkRange(header.sector, dataLength / SECTOR_SIZE, limits);
      if (sector === null) return fault('OUT_OF_RANGE', type);
      if ((sector * SECTOR_SIZE) % limits.alignment !== 0 || dataLength % limits.alignment !== 0) return fault('UNALIGNED', type);
      const data = isRead ? writableData() : readableData();
      return { kind: 'request', statusAddress, request: { type: isRead ? 'in' : 'out', sector, data, dataLength } };
    }
    case VIRTIO_BLK_T_FLUSH:
      if (!limits.flush) return fault('FEATURE_NOT_NEGOTIATED', type);
      // §5.2.6.1: the driver SHOULD NOT include data; carrying some is tolerated only read-side
      // (a flush never writes data, so writable data would be left undefined: refuse it).
      if (writableDataLength !== 0) return fault('UNEXPECTED_DATA', type);
      return { kind: 'request', statusAddress, request: { type: 'flush' } };
    case VIRTIO_BLK_T_GET_ID:
      if (readableDataLength !== 0) return fault('UNEXPECTED_DATA', type);
      return { kind: 'request', statusAddress, request: { type: 'get-id', data: writableData(), dataLength: writableDataLength } };
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const isDiscard = type === VIRTIO_BLK_T_DISCARD;
      if (!(isDiscard ? limits.discard : limits.writeZeroes)) return fault('FEATURE_NOT_NEGOTIATED', type);
      if (writableDataLength !== 0) return fault('UNEXPECTED_DATA', type);
      if (limits.readOnly) return fault('READ_ONLY', type);
      // §5.2.6.1: data MUST be a multiple of the segment size and hold 1..max segments.
      if (readableDataLength % DISCARD_SEGMENT_SIZE !== 0) return fault('BAD_DATA_LENGTH', type);
      const count = readableDataLength / DISCARD_SEGMENT_SIZE;
      const maxSeg = isDiscard ? limits.maxDiscardSeg : limits.maxWriteZeroesSeg;
      if (count === 0 || count > maxSeg) return fault('BAD_SEGMENT_COUNT', type);
      const bytes = new Uint8Array(readableDataLength); // bounded: maxSeg * 16
      gather(memory, readableData(), bytes);
      const maxSectors = isDiscard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors;
      const ranges: DiscardRange[] = [];
      for (const raw of decodeDiscardSegments(bytes)) {
        // §5.2.6.2: UNSUPP for any unknown flag, and for unmap on a discard.
        if ((raw.flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0) return fault('RESERVED_FLAGS', type);
        const unmap = (raw.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
        if (isDiscard && unmap) return fault('UNMAP_ON_DISCARD', type);
        if (raw.numSectors > maxSectors) return fault('SEGMENT_TOO_LARGE', type);
        const sector = checkRange(raw.sector, raw.numSectors, limits);
        if (sector === null) return fault('OUT_OF_RANGE', type);
        if ((sector * SECTOR_SIZE) % limits.alignment !== 0 || (raw.numSectors * SECTOR_SIZE) % limits.alignment !== 0) {
          return fault('UNALIGNED', type);
        }
        ranges.push({ sector, numSectors: raw.numSectors, unmap });
      }
      return { kind: 'request', statusAddress, request: { type: isDiscard ? 'discard' : 'write-zeroes', ranges } };
    }
    default:
      return fault('UNSUPPORTED_TYPE', type);
  }
}

/** The start sector as a number when `[sector, sector + count)` lies within capacity, else null (no overflow: bigint). */
function checkRange(sector: bigint, count: number, limits: RequestLimits): number | null {
  if (sector + BigInt(count) > BigInt(limits.capacitySectors)) return null;
  return Number(sector);
}

function lastWritableByte(writable: readonly Segment[]): number | null {
  for (let i = writable.length - 1; i >= 0; i--) {
    const s = writable[i]!;
    if (s.length > 0) return s.address + s.length - 1;
  }
  return null;
}
