import { MemoryError } from './errors.js';

/** A guest-physical address: an integer in [0, 2^53). Larger addresses are invalid. */
export type GuestAddress = number;

/** Largest valid guest-physical address plus one: every range must end at or below it. */
export const MAX_GUEST_ADDRESS = Number.MAX_SAFE_INTEGER + 1; // 2^53

/** Description of one region when building a {@link GuestMemory}. */
export interface GuestRegionOptions {
  /** First guest-physical address of the region. */
  readonly guestAddress: GuestAddress;
  /** Size in bytes (> 0). */
  readonly size: number;
  /**
   * Backing store: an ArrayBuffer, a SharedArrayBuffer, or an ArrayBuffer over mmap'd memory
   * (packages/host). Defaults to a new SharedArrayBuffer of `size` bytes, or an ArrayBuffer where
   * SharedArrayBuffer does not exist (a browser page without cross-origin isolation).
   */
  readonly buffer?: ArrayBufferLike;
  /** Byte offset of the region's first byte inside `buffer` (default 0). */
  readonly offset?: number;
}

/**
 * One contiguous range of guest-physical memory backed by a buffer.
 *
 * The typed views are exposed so that hot paths (the ring) can index them directly once a
 * range has been validated against the region.
 */
export class GuestRegion {
  /** First guest-physical address. */
  readonly start: GuestAddress;
  /** One past the last guest-physical address. */
  readonly end: GuestAddress;
  readonly size: number;
  readonly buffer: ArrayBufferLike;
  /** Offset of `start` inside `buffer`. */
  readonly offset: number;
  /** Bytes of the region: `bytes[0]` is guest address `start`. */
  readonly bytes: Uint8Array;
  /** Little-endian accessors over the region (index 0 is `start`). */
  readonly view: DataView;
  /**
   * Views over the whole backing buffer for atomic accesses; index with
   * `(offset + (address - start)) >> 1` (or `>> 2`). Present when the buffer length allows.
   */
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  /** True when the backing is a SharedArrayBuffer (it can be posted to a worker). */
  readonly shared: boolean;

  constructor(options: GuestRegionOptions) {
    const { guestAddress, size } = options;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(guestAddress) || guestAddress < 0) {
      throw new MemoryError('INVALID_REGION', 'region guest address must be an integer in [0, 2^53)', { address: guestAddress });
    }
    if (!Number.isSafeInteger(size) || size <= 0 || guestAddress + size > MAX_GUEST_ADDRESS) {
      throw new MemoryError('INVALID_REGION', 'region size must be positive and end at or below 2^53', { address: guestAddress, length: size });
    }
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new MemoryError('INVALID_REGION', 'region offset must be a non-negative integer', { address: guestAddress });
    }
    // Atomic u16/u32 accesses on naturally aligned guest addresses must land on aligned buffer
    // offsets, so the region's start and offset must agree modulo 8.
    if ((guestAddress - offset) % 8 !== 0) {
      throw new MemoryError('INVALID_REGION', 'region guest address and buffer offset must agree modulo 8', { address: guestAddress });
    }
    const buffer = options.buffer ?? (typeof SharedArrayBuffer !== 'undefined' ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
    if (offset + size > buffer.byteLength) {
      throw new MemoryError('INVALID_REGION', `backing buffer of ${buffer.byteLength} bytes is too small for the region`, { address: guestAddress, length: size });
    }
    this.start = guestAddress;
    this.end = guestAddress + size;
    this.size = size;
    this.buffer = buffer;
    this.offset = offset;
    this.bytes = new Uint8Array(buffer, offset, size);
    this.view = new DataView(buffer, offset, size);
    this.u16 = new Uint16Array(buffer, 0, buffer.byteLength >>> 1);
    this.u32 = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
    this.shared = typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer;
  }

  /** True when `[address, address + length)` lies inside this region. */
  contains(address: GuestAddress, length = 1): boolean {
    return address >= this.start && address + length <= this.end;
  }
}
