import type { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { DESCRIPTOR_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { RingError, type RingErrorCode } from '../errors.js';
import { EMPTY_SEGMENTS as EMPTY, segment, segmentsOf } from '../segments.js';
import type { DescriptorChain, Segment } from '../types.js';

/** Largest chain length in bytes (§2.7.5.2: a chain MUST NOT exceed 2^32 bytes in total). */
export const MAX_CHAIN_LENGTH = 0xffff_ffff;

/** 2^32, to combine the two halves of a le64 address. */
const TWO_POW_32 = 4294967296;
/** An address high word at or above this puts the address at or past 2^53 (invalid, see ARCHITECTURE.md). */
const MAX_ADDRESS_HIGH = 0x20_0000;

/** A validated split-ring chain, as `SplitDeviceQueue.pop()` returns it. */
export class SplitDescriptorChain implements DescriptorChain {
  // `declare`: plain assignments in the constructor, no class-field definitions first (those
  // would cost a define per field and widen the fields' representation).
  declare readonly head: number;
  declare readonly readable: readonly Segment[];
  declare readonly writable: readonly Segment[];
  declare readonly readableLength: number;
  declare readonly writableLength: number;
  declare readonly descriptorCount: number;

  constructor(head: number, readable: readonly Segment[], writable: readonly Segment[], readableLength: number, writableLength: number, descriptorCount: number) {
    this.head = head;
    this.readable = readable;
    this.writable = writable;
    this.readableLength = readableLength;
    this.writableLength = writableLength;
    this.descriptorCount = descriptorCount;
  }
}

/**
 * Walks and validates one split-ring descriptor chain, direct or through one indirect table
 * (VIRTIO 1.3 §2.7.5, §2.7.5.3), and flattens it into readable then writable segments.
 *
 * Every descriptor the guest wrote is untrusted. The walk is bounded: a descriptor visited twice
 * is a loop (a per-walk epoch stamp per descriptor, no clearing), an indirect table holds at most
 * `size` entries, and the number of segments is at most `size`, so the work and the memory of
 * one walk are O(queue size) whatever the guest wrote.
 *
 * The descriptor table must lie in one region (checked by `validateSplitLayout`); its typed
 * views are cached. Little-endian hosts only (checked at construction).
 */
export class DescriptorChainReader {
  private readonly size: number;
  private readonly memory: GuestMemory;
  private readonly queue: number | undefined;
  private readonly indirectAllowed: boolean;
  private readonly u32: Uint32Array;
  /** Index in `u32` of descriptor 0. */
  private readonly base32: number;
  private readonly visited: Uint32Array;
  private readonly indirectVisited: Uint32Array;
  private epoch = 0;
  /** Bounds of the region of the last buffer seen (most buffers sit in the same region). */
  private dataStart: number;
  private dataEnd: number;

  // Accumulators of the walk in progress (fields, not closures: no allocation per walk).
  // The walk validates into typed scratch (address and length of each segment, readable ones
  // first since a readable segment never follows a writable one); the chain's segment objects
  // and arrays are built once the whole chain has passed. Typed scratch, not arrays of objects:
  // storing new objects into a long-lived array costs a write barrier each.
  private head = 0;
  private readonly addresses: Float64Array;
  private readonly lengths: Uint32Array;
  private readableCount = 0;
  private writableCount = 0;
  private readableLength = 0;
  private writableLength = 0;

  constructor(memory: GuestMemory, descRegion: GuestRegion, descTable: number, size: number, indirectAllowed: boolean, queue?: number) {
    if (!LITTLE_ENDIAN_HOST) throw new RingError('INVALID_ARGUMENT', 'big-endian hosts are not supported');
    this.memory = memory;
    this.size = size;
    this.queue = queue;
    this.indirectAllowed = indirectAllowed;
    this.u32 = descRegion.u32;
    this.base32 = (descRegion.offset + descTable - descRegion.start) / 4;
    this.visited = new Uint32Array(size);
    this.indirectVisited = new Uint32Array(size);
    // At most `size` segments per chain (pigeonhole for direct, CHAIN_TOO_LONG for indirect).
    this.addresses = new Float64Array(size);
    this.lengths = new Uint32Array(size);
    this.dataStart = descRegion.start;
    this.dataEnd = descRegion.end;
  }

  /**
   * Reads the chain starting at `head` (which the caller has checked is < size). Throws a
   * non-fatal {@link RingError} with `context.head` for an invalid chain.
   */
  read(head: number): SplitDescriptorChain {
    // Fast path: a lone direct descriptor (no NEXT, no INDIRECT) cannot loop or overflow.
    const u32 = this.u32;
    const b = this.base32 + head * 4;
    const flags = u32[b + 3]!;
    if ((flags & (VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_INDIRECT)) === 0) {
      const addressLow = u32[b]!;
      const addressHigh = u32[b + 1]!;
      const length = u32[b + 2]!;
      let address = addressLow;
      if (addressHigh !== 0 || addressLow < this.dataStart || addressLow + length > this.dataEnd) {
        this.head = head;
        address = this.checkBuffer(addressLow, addressHigh, length, head);
      }
      return (flags & VIRTQ_DESC_F_WRITE) === 0
        ? new SplitDescriptorChain(head, [segment(address, length)], EMPTY, length, 0, 1)
        : new SplitDescriptorChain(head, EMPTY, [segment(address, length)], 0, length, 1);
    }
    return this.readChain(head);
  }

  private readChain(head: number): SplitDescriptorChain {
    let epoch = (this.epoch + 1) >>> 0;
    if (epoch === 0) {
      this.visited.fill(0);
      this.indirectVisited.fill(0);
      epoch = 1;
    }
    this.epoch = epoch;
    this.head = head;

    // Direct descriptors accumulate in locals (the hot path); an indirect table, always last,
    // continues through the fields and addSegment(). Errors are thrown where found (`throw`, so
    // that the compiler knows the walk does not go on and keeps its locals in registers).
    const u32 = this.u32;
    const base32 = this.base32;
    const size = this.size;
    const visited = this.visited;
    const addresses = this.addresses;
    const lengths = this.lengths;
    let dataStart = this.dataStart;
    let dataEnd = this.dataEnd;
    let readableCount = 0;
    let writableCount = 0;
    let readableLength = 0;
    let writableLength = 0;
    let descriptorCount = 0;
    let i = head;
    for (;;) {
      // §2.7.5.2: a chain that revisits a descriptor never ends. With no revisit, a direct chain
      // has at most `size` descriptors (pigeonhole), so CHAIN_TOO_LONG needs an indirect table.
      if (visited[i] === epoch) throw this.error('DESCRIPTOR_LOOP', 'descriptor chain loops', i);
      visited[i] = epoch;
      descriptorCount++;
      const b = base32 + i * 4;
      const addressLow = u32[b]!;
      const addressHigh = u32[b + 1]!;
      const length = u32[b + 2]!;
      const flagsNext = u32[b + 3]!;
      if ((flagsNext & VIRTQ_DESC_F_INDIRECT) !== 0) {
        // §2.7.5.3.1: the driver MUST NOT set INDIRECT unless negotiated, nor with NEXT.
        if (!this.indirectAllowed) throw this.error('INDIRECT_NOT_NEGOTIATED', 'indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC', i);
        if ((flagsNext & VIRTQ_DESC_F_NEXT) !== 0) throw this.error('INDIRECT_WITH_NEXT', 'indirect descriptor also has VIRTQ_DESC_F_NEXT', i);
        this.readableCount = readableCount;
        this.writableCount = writableCount;
        this.readableLength = readableLength;
        this.writableLength = writableLength;
        // §2.7.5.3.2: the device MUST ignore the write-only flag of the descriptor naming the table.
        this.readIndirect(addressLow, addressHigh, length, i);
        readableCount = this.readableCount;
        writableCount = this.writableCount;
        readableLength = this.readableLength;
        writableLength = this.writableLength;
        break;
      }
      let address = addressLow;
      if (addressHigh !== 0 || addressLow < dataStart || addressLow + length > dataEnd) {
        address = this.checkBuffer(addressLow, addressHigh, length, i);
        dataStart = this.dataStart;
        dataEnd = this.dataEnd;
      }
      const k = readableCount + writableCount;
      addresses[k] = address;
      lengths[k] = length;
      if ((flagsNext & VIRTQ_DESC_F_WRITE) !== 0) {
        writableCount++;
        writableLength += length;
      } else {
        // §2.7.4.2: the driver MUST place device-writable descriptors after device-readable ones.
        if (writableCount !== 0) throw this.error('READABLE_AFTER_WRITABLE', 'device-readable descriptor after a device-writable one', i);
        readableCount++;
        readableLength += length;
      }
      // §2.7.5.2: the total length MUST NOT exceed 2^32 - 1 (lengths are u32, so the sum stays exact).
      if (readableLength + writableLength > MAX_CHAIN_LENGTH) throw this.error('TOTAL_LENGTH_OVERFLOW', 'chain length exceeds 2^32 - 1 bytes', i);
      if ((flagsNext & VIRTQ_DESC_F_NEXT) === 0) break;
      const next = flagsNext >>> 16;
      if (next >= size) throw this.error('DESCRIPTOR_INDEX_OUT_OF_RANGE', `next descriptor ${next} is outside the queue`, i);
      i = next;
    }
    return new SplitDescriptorChain(
      head,
      segmentsOf(addresses, lengths, 0, readableCount),
      segmentsOf(addresses, lengths, readableCount, writableCount),
      readableLength,
      writableLength,
      descriptorCount,
    );
  }

  private readIndirect(addressLow: number, addressHigh: number, length: number, descriptor: number): void {
    // §2.7.5.3.1: an indirect table is a whole number of 16-byte descriptors, at least one.
    if (length === 0 || length % DESCRIPTOR_SIZE !== 0) {
      throw this.error('INDIRECT_TABLE_INVALID_LENGTH', 'indirect table length is zero or not a multiple of 16', descriptor, undefined, length);
    }
    const entries = length / DESCRIPTOR_SIZE;
    // §2.7.5.3.1: a chain MUST NOT be longer than the queue size. This bounds the walk too.
    if (entries > this.size) throw this.error('CHAIN_TOO_LONG', `indirect table of ${entries} entries exceeds the queue size`, descriptor);
    if (addressHigh >= MAX_ADDRESS_HIGH) throw this.error('ADDRESS_OUT_OF_RANGE', 'indirect table address is past 2^53', descriptor);
    const address = addressHigh === 0 ? addressLow : addressHigh * TWO_POW_32 + addressLow;
    const region = this.memory.findRegion(address);
    // Deviation: an indirect table that spans two adjacent regions is refused (no driver does it).
    if (region === undefined || address + length > region.end) {
      throw this.error('ADDRESS_OUT_OF_RANGE', 'indirect table is not inside one guest memory region', descriptor, address, length);
    }
    const view = region.view;
    const base = address - region.start;
    const visited = this.indirectVisited;
    const epoch = this.epoch;
    let j = 0;
    for (;;) {
      if (visited[j] === epoch) throw this.error('DESCRIPTOR_LOOP', 'indirect descriptor chain loops', j);
      visited[j] = epoch;
      const o = base + j * DESCRIPTOR_SIZE;
      const flags = view.getUint16(o + 12, true);
      // §2.7.5.3.1: the driver MUST NOT set INDIRECT inside an indirect table.
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) throw this.error('NESTED_INDIRECT', 'indirect descriptor inside an indirect table', j);
      this.addSegment(view.getUint32(o, true), view.getUint32(o + 4, true), view.getUint32(o + 8, true), (flags & VIRTQ_DESC_F_WRITE) !== 0, j);
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return;
      const next = view.getUint16(o + 14, true);
      if (next >= entries) throw this.error('DESCRIPTOR_INDEX_OUT_OF_RANGE', `indirect next ${next} points outside the table of ${entries}`, j);
      j = next;
    }
  }

  private addSegment(addressLow: number, addressHigh: number, length: number, writable: boolean, descriptor: number): void {
    let address = addressLow;
    if (addressHigh !== 0 || addressLow < this.dataStart || addressLow + length > this.dataEnd) {
      address = this.checkBuffer(addressLow, addressHigh, length, descriptor);
    }
    // §2.7.5.3.1 bounds the segments of one chain by the queue size (reachable only through indirect).
    const k = this.readableCount + this.writableCount;
    if (k >= this.size) throw this.error('CHAIN_TOO_LONG', 'chain has more segments than the queue size', descriptor);
    this.addresses[k] = address;
    this.lengths[k] = length;
    if (writable) {
      this.writableCount++;
      this.writableLength += length;
    } else {
      // §2.7.4.2: the driver MUST place device-writable descriptors after device-readable ones.
      if (this.writableCount !== 0) throw this.error('READABLE_AFTER_WRITABLE', 'device-readable descriptor after a device-writable one', descriptor);
      this.readableCount++;
      this.readableLength += length;
    }
    // §2.7.5.2: the total length MUST NOT exceed 2^32 - 1 (lengths are u32, so the sum stays exact).
    if (this.readableLength + this.writableLength > MAX_CHAIN_LENGTH) {
      throw this.error('TOTAL_LENGTH_OVERFLOW', 'chain length exceeds 2^32 - 1 bytes', descriptor);
    }
  }

  /**
   * The slow path of a buffer's address check (outside the last region seen, or above 4 GiB):
   * returns the address, or throws ADDRESS_OUT_OF_RANGE. A buffer may span adjacent regions;
   * a hole, the end of RAM or an address past 2^53 is an error.
   */
  private checkBuffer(addressLow: number, addressHigh: number, length: number, descriptor: number): number {
    if (addressHigh >= MAX_ADDRESS_HIGH) throw this.error('ADDRESS_OUT_OF_RANGE', 'buffer address is past 2^53', descriptor);
    const address = addressHigh * TWO_POW_32 + addressLow;
    if (address >= this.dataStart && address + length <= this.dataEnd) return address;
    const r = this.memory.findRegion(address);
    if (r !== undefined && address + length <= r.end) {
      this.dataStart = r.start;
      this.dataEnd = r.end;
      return address;
    }
    if (!this.memory.isMapped(address, length)) {
      throw this.error('ADDRESS_OUT_OF_RANGE', 'buffer is not inside guest memory', descriptor, address, length);
    }
    return address;
  }

  private error(code: RingErrorCode, message: string, descriptor: number, address?: number, length?: number): RingError {
    return new RingError(code, message, { queue: this.queue, head: this.head, descriptor, address, length });
  }
}

/** True on little-endian hosts: the typed views read le16/le32 guest fields directly. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
