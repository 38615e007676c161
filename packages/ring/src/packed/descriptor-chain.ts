import type { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { MAX_QUEUE_SIZE, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_USED, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { RingError, type RingErrorCode } from '../errors.js';
import { EMPTY_SEGMENTS, segmentsOf } from '../segments.js';
import type { DescriptorChain, Segment } from '../types.js';
import type { PackedRingViews } from './layout.js';

// VIRTIO 1.3 §2.8.6 (Next Flag: Descriptor Chaining), §2.8.7 (Indirect Flag) and their
// normative sections §2.8.17–§2.8.19: how the device reads one buffer out of a packed ring.

/** Largest indirect table the device accepts, in descriptors: 32768 * 16 bytes = 512 KiB. A
 * table may be longer than the queue (Linux sizes it by the scatterlist), but never unbounded. */
export const MAX_INDIRECT_DESCRIPTORS = MAX_QUEUE_SIZE;

/** Largest total chain length (§2.8.4: lengths are le32; the sum must fit too). */
const MAX_TOTAL_LENGTH = 0xffffffff;
const TWO_POW_32 = 0x1_0000_0000;
/** High u32 of the largest valid guest address (2^53 - 1). */
const MAX_ADDRESS_HIGH = 0x1fffff;

const EMPTY = EMPTY_SEGMENTS;

/** True when a descriptor with `flags` is available in the lap whose wrap counter is `wrap` (§2.8.1). */
export function isAvailable(flags: number, wrap: boolean): boolean {
  const avail = (flags & VIRTQ_DESC_F_AVAIL) !== 0;
  const used = (flags & VIRTQ_DESC_F_USED) !== 0;
  return avail === wrap && used !== wrap;
}

/** `extent()` result: the chain's NEXT flags run past the queue size. */
export const EXTENT_TOO_LONG = -1;

/**
 * Reads buffers out of a packed Descriptor Ring for the device side, in two passes.
 *
 * 1. {@link extent}: how many ring slots the buffer at a position takes (following NEXT), or 0
 *    when it is not (entirely) available yet. A NEXT that runs into a slot the driver has not
 *    made available is "no buffer yet", not an error: §2.8.17 makes the driver publish the head
 *    last, so a well-behaved driver never shows this state and a hostile one only stalls itself.
 *    A chain still flagged NEXT after `size` slots is longer than the queue (§2.8.17: MUST NOT)
 *    and can never complete, since the slot after it is its own head in the next lap.
 * 2. {@link parse}: validates the slots and any indirect table, and builds the chain. On the
 *    first content error it returns null and leaves the error in {@link lastError} (it does not
 *    throw), so that the caller can consume the chain and let the device complete it with
 *    `pushUsed(id, 0)`.
 * @internal
 */
export class PackedChainReader {
  /** Buffer id of the last buffer {@link extent} measured (§2.8.6: "Buffer ID is included in the last descriptor"). */
  lastId = 0;
  /** The error of the last {@link parse} that returned null. */
  lastError: RingError | null = null;
  private region: GuestRegion;
  /** Typed scratch of a direct chain's segments (at most `size`), turned into objects once it has passed. */
  private readonly addresses: Float64Array;
  private readonly lengths: Uint32Array;

  constructor(
    private readonly views: PackedRingViews,
    private readonly memory: GuestMemory,
    private readonly size: number,
    private readonly indirect: boolean,
    private readonly queue: number,
  ) {
    this.region = memory.regions[0]!;
    this.addresses = new Float64Array(size);
    this.lengths = new Uint32Array(size);
  }

  /** Slots taken by the buffer starting at `position` in lap `wrap`; 0 when not available; {@link EXTENT_TOO_LONG}. */
  extent(position: number, wrap: boolean): number {
    const u16 = this.views.descU16;
    const base = this.views.desc16;
    // The head's flags are the publication point: an Atomics (acquire) load orders every
    // later plain read of the chain after the driver's writes (§2.8.21 memory barrier).
    let flags = Atomics.load(u16, base + position * 8 + 7);
    if (!isAvailable(flags, wrap)) return 0;
    let count = 1;
    let slot = position;
    let lap = wrap;
    const size = this.size;
    while ((flags & VIRTQ_DESC_F_NEXT) !== 0) {
      if (count === size) return EXTENT_TOO_LONG;
      slot++;
      if (slot === size) {
        slot = 0;
        lap = !lap;
      }
      flags = u16[base + slot * 8 + 7]!;
      if (!isAvailable(flags, lap)) return 0;
      count++;
    }
    this.lastId = u16[base + slot * 8 + 6]!;
    return count;
  }

  /** Validates and flattens the `count` slots from `position`, buffer id `id`. */
  parse(position: number, count: number, id: number): DescriptorChain | null {
    if (count === 1) {
      // Fast path: one direct descriptor (the common case, and the benchmark's).
      const u32 = this.views.descU32;
      const d = this.views.desc32 + position * 4;
      const flags = this.views.descU16[this.views.desc16 + position * 8 + 7]!;
      if ((flags & VIRTQ_DESC_F_INDIRECT) === 0) {
        const low = u32[d]!;
        const high = u32[d + 1]!;
        const length = u32[d + 2]!;
        const address = high * TWO_POW_32 + low;
        if (high > MAX_ADDRESS_HIGH || !this.mapped(address, length)) {
          return this.error('ADDRESS_OUT_OF_RANGE', 'buffer is not inside guest memory', id, position, address, length);
        }
        const segment: Segment = { address, length };
        return (flags & VIRTQ_DESC_F_WRITE) !== 0
          ? { head: id, readable: EMPTY, writable: [segment], readableLength: 0, writableLength: length, descriptorCount: 1 }
          : { head: id, readable: [segment], writable: EMPTY, readableLength: length, writableLength: 0, descriptorCount: 1 };
      }
    }
    return this.parseList(position, count, id);
  }

  /** {@link parse} of a NEXT-linked list (or a lone indirect descriptor), kept apart so that `parse` stays small enough to inline. */
  private parseList(position: number, count: number, id: number): DescriptorChain | null {
    const u32 = this.views.descU32;
    const base32 = this.views.desc32;
    const u16 = this.views.descU16;
    const base16 = this.views.desc16;
    const size = this.size;
    const addresses = this.addresses;
    const lengths = this.lengths;
    let readableCount = 0;
    let writableCount = 0;
    let readableLength = 0;
    let writableLength = 0;
    let slot = position;
    for (let i = 0; i < count; i++) {
      const d = base32 + slot * 4;
      const low = u32[d]!;
      const high = u32[d + 1]!;
      const length = u32[d + 2]!;
      const flags = u16[base16 + slot * 8 + 7]!;
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        // §2.8.19: "MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the VIRTIO_F_INDIRECT_DESC
        // feature was negotiated" and "MUST NOT write direct descriptors with
        // VIRTQ_DESC_F_INDIRECT set in a scatter-gather list linked by VIRTQ_DESC_F_NEXT".
        if (!this.indirect) return this.error('INDIRECT_NOT_NEGOTIATED', 'indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC', id, slot);
        if (count !== 1) return this.error('INDIRECT_WITH_NEXT', 'indirect descriptor in a list linked by VIRTQ_DESC_F_NEXT', id, slot);
        return this.parseIndirect(high, low, length, id, slot);
      }
      if (high > MAX_ADDRESS_HIGH) return this.error('ADDRESS_OUT_OF_RANGE', 'buffer address past 2^53', id, slot, high * TWO_POW_32 + low, length);
      const address = high * TWO_POW_32 + low;
      if (!this.mapped(address, length)) return this.error('ADDRESS_OUT_OF_RANGE', 'buffer is not inside guest memory', id, slot, address, length);
      // count <= size (extent() stops at the queue size), so the scratch index stays in range.
      addresses[i] = address;
      lengths[i] = length;
      if ((flags & VIRTQ_DESC_F_WRITE) !== 0) {
        writableCount++;
        writableLength += length;
      } else {
        // §2.8.17: "The driver MUST place any device-writable descriptor elements after any
        // device-readable descriptor elements."
        if (writableCount !== 0) return this.error('READABLE_AFTER_WRITABLE', 'device-readable descriptor after a device-writable one', id, slot);
        readableCount++;
        readableLength += length;
      }
      if (readableLength + writableLength > MAX_TOTAL_LENGTH) {
        return this.error('TOTAL_LENGTH_OVERFLOW', 'chain lengths sum past 2^32 - 1', id, slot);
      }
      slot++;
      if (slot === size) slot = 0;
    }
    return {
      head: id,
      readable: segmentsOf(addresses, lengths, 0, readableCount),
      writable: segmentsOf(addresses, lengths, readableCount, writableCount),
      readableLength,
      writableLength,
      descriptorCount: count,
    };
  }

  /** §2.8.7: the one ring descriptor refers to a table of `length / 16` descriptors. */
  private parseIndirect(high: number, low: number, length: number, id: number, slot: number): DescriptorChain | null {
    if (length === 0 || length % 16 !== 0) {
      return this.error('INDIRECT_TABLE_INVALID_LENGTH', 'indirect table length is 0 or not a multiple of 16', id, slot, undefined, length);
    }
    const entries = length / 16;
    if (entries > MAX_INDIRECT_DESCRIPTORS) {
      return this.error('CHAIN_TOO_LONG', `indirect table holds more than ${MAX_INDIRECT_DESCRIPTORS} descriptors`, id, slot, undefined, length);
    }
    const table = high * TWO_POW_32 + low;
    if (high > MAX_ADDRESS_HIGH || !this.mapped(table, length)) {
      return this.error('ADDRESS_OUT_OF_RANGE', 'indirect table is not inside guest memory', id, slot, table, length);
    }
    // Fast path: the table inside one region, read through its DataView. Otherwise (a table
    // across two adjacent regions) every field goes through GuestMemory's checked accessors.
    const region = this.region;
    const inRegion = table >= region.start && table + length <= region.end;
    const view = region.view;
    const memory = this.memory;
    let readable: Segment[] | null = null;
    let writable: Segment[] | null = null;
    let readableLength = 0;
    let writableLength = 0;
    for (let i = 0; i < entries; i++) {
      const entry = table + i * 16;
      let low: number;
      let high: number;
      let entryLength: number;
      let flags: number;
      if (inRegion) {
        const o = entry - region.start;
        low = view.getUint32(o, true);
        high = view.getUint32(o + 4, true);
        entryLength = view.getUint32(o + 8, true);
        flags = view.getUint16(o + 14, true);
      } else {
        low = memory.readU32(entry);
        high = memory.readU32(entry + 4);
        entryLength = memory.readU32(entry + 8);
        flags = memory.readU16(entry + 14);
      }
      // §2.8.19: "The driver MUST NOT set any flags except DESC_F_WRITE within an indirect
      // descriptor." NEXT and the rest are reserved and ignored (§2.8.7); INDIRECT would nest
      // tables, which no virtio ring allows (§2.7.5.3.1 says it for split), so it is refused.
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) return this.error('NESTED_INDIRECT', 'indirect descriptor inside an indirect table', id, i, entry);
      if (high > MAX_ADDRESS_HIGH) return this.error('ADDRESS_OUT_OF_RANGE', 'buffer address past 2^53', id, i, high * TWO_POW_32 + low, entryLength);
      const address = high * TWO_POW_32 + low;
      if (!this.mapped(address, entryLength)) return this.error('ADDRESS_OUT_OF_RANGE', 'buffer is not inside guest memory', id, i, address, entryLength);
      if ((flags & VIRTQ_DESC_F_WRITE) !== 0) {
        const segment: Segment = { address, length: entryLength };
        if (writable === null) writable = [segment];
        else writable.push(segment);
        writableLength += entryLength;
      } else {
        if (writable !== null) return this.error('READABLE_AFTER_WRITABLE', 'device-readable descriptor after a device-writable one', id, i);
        const segment: Segment = { address, length: entryLength };
        if (readable === null) readable = [segment];
        else readable.push(segment);
        readableLength += entryLength;
      }
      if (readableLength + writableLength > MAX_TOTAL_LENGTH) {
        return this.error('TOTAL_LENGTH_OVERFLOW', 'chain lengths sum past 2^32 - 1', id, i);
      }
    }
    return { head: id, readable: readable ?? EMPTY, writable: writable ?? EMPTY, readableLength, writableLength, descriptorCount: 1 };
  }

  /** True when `[address, address + length)` is guest memory (adjacent regions allowed). */
  private mapped(address: number, length: number): boolean {
    const r = this.region;
    if (address >= r.start && address + length <= r.end) return true;
    if (!this.memory.isMapped(address, length)) return false;
    const hit = this.memory.findRegion(address);
    if (hit !== undefined) this.region = hit;
    return true;
  }

  /** Records the chain's first error in {@link lastError} and returns null. */
  private error(code: RingErrorCode, message: string, head: number, descriptor: number, address?: number, length?: number): null {
    this.lastError = new RingError(code, message, { queue: this.queue, head, descriptor, address, length });
    return null;
  }
}
