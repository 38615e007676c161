import type { GuestMemory } from '@virtio-ts/memory';
import { DESCRIPTOR_SIZE, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import { RingError } from '../errors.js';
import type { DriverQueue, QueueFeatures, QueueOptions, Segment, SplitQueueLayout, UsedBuffer } from '../types.js';
import { LITTLE_ENDIAN_HOST, MAX_CHAIN_LENGTH } from './descriptor-chain.js';
import {
  AVAIL_FLAGS_OFFSET,
  AVAIL_IDX_OFFSET,
  AVAIL_RING_OFFSET,
  USED_FLAGS_OFFSET,
  USED_IDX_OFFSET,
  USED_RING_OFFSET,
  availRingSize,
  descTableSize,
  usedRingSize,
  validateSplitLayout,
} from './layout.js';
import { needEvent, resolveFeatures } from './ring-math.js';

/**
 * Guest memory the driver reserves for indirect tables: one table of `maxDescriptors` entries
 * per head, at `address + head * maxDescriptors * 16`. A head owns at most one indirect table, so
 * this needs no allocator, cannot fragment, and costs nothing per `add`.
 * Size it with {@link indirectAreaSize}.
 */
export interface IndirectArea {
  /** Guest address of the area: 16-byte aligned, the whole area inside one region. */
  readonly address: number;
  /** Entries per table: the longest chain that can go indirect (2..queue size). */
  readonly maxDescriptors: number;
}

/** Options of {@link SplitDriverQueue}. */
export interface SplitDriverQueueOptions extends QueueOptions {
  /** Where indirect tables go. Without it, VIRTIO_RING_F_INDIRECT_DESC is negotiated but unused. */
  readonly indirectArea?: IndirectArea;
  /**
   * Chains of at least this many segments go through an indirect table (when negotiated and an
   * area is given). Default 2, as Linux does. Shorter chains also go indirect when the table is
   * too full for them.
   */
  readonly indirectThreshold?: number;
}

/** Bytes of an {@link IndirectArea} for a queue of `queueSize` with tables of `maxDescriptors`. */
export function indirectAreaSize(queueSize: number, maxDescriptors: number): number {
  return queueSize * maxDescriptors * DESCRIPTOR_SIZE;
}

const TWO_POW_32 = 4294967296;

/** The high 32 bits of a guest address (< 2^53); no division for the common address below 4 GiB. */
function highWord(address: number): number {
  return address > 0xffff_ffff ? Math.floor(address / TWO_POW_32) : 0;
}

/** A caller's segment address: an integer in [0, 2^53). Written out: this is the hot path. */
function isValidAddress(address: number): boolean {
  // Fast path: an address below 4 GiB is its own uint32.
  return address >>> 0 === address || (address >= 0 && address <= Number.MAX_SAFE_INTEGER && Math.floor(address) === address);
}

/**
 * The driver side of a split virtqueue (VIRTIO 1.3 §2.7.13): a free list of descriptors,
 * indirect tables for long chains, notification decisions with or without EVENT_IDX, and used
 * buffers checked against what was added. The device is untrusted too: a used id that is not in
 * flight or a length larger than the buffer's writable part throws `INVALID_USED_ELEMENT` and
 * breaks the queue (Linux's BAD_RING); `detachUnused()` still returns the tokens.
 *
 * The driver owns the ring memory: the constructor zeroes the three areas (§3.1.1: the driver
 * sets the queue up before the device uses it).
 *
 * @example
 * ```ts
 * const driver = new SplitDriverQueue<string>(layout, { memory });
 * driver.add([{ address: 0x10000, length: 16 }], [{ address: 0x20000, length: 512 }], 'req-1');
 * if (driver.kickPrepare()) notifyDevice();
 * // ... later, on an interrupt:
 * for (let used = driver.getUsed(); used !== null; used = driver.getUsed()) complete(used.token, used.length);
 * ```
 */
export class SplitDriverQueue<T> implements DriverQueue<T> {
  readonly layout = 'split' as const;
  readonly size: number;
  readonly features: QueueFeatures;
  readonly ring: SplitQueueLayout;
  readonly memory: GuestMemory;
  private readonly queueIndex: number | undefined;
  private readonly mask: number;
  private readonly eventIdx: boolean;
  private readonly inOrder: boolean;

  private readonly descU32: Uint32Array;
  private readonly descBase32: number;
  private readonly availU16: Uint16Array;
  private readonly availFlagsIndex: number;
  private readonly availIdxIndex: number;
  private readonly availRingIndex: number;
  private readonly usedEventIndex: number;
  private readonly usedU16: Uint16Array;
  private readonly usedU32: Uint32Array;
  private readonly usedFlagsIndex: number;
  private readonly usedIdxIndex: number;
  private readonly usedRingIndex32: number;
  private readonly availEventIndex: number;

  // Indirect tables (absent when not negotiated or no area given).
  private readonly indirectU32: Uint32Array | null = null;
  private readonly indirectBase32: number = 0;
  private readonly indirectAddress: number = 0;
  private readonly indirectMax: number = 0;
  private readonly indirectThreshold: number;

  /** Free list and chain links, kept privately: the shared table is never trusted back. */
  private readonly nextFree: Uint16Array;
  private freeHead = 0;
  private free: number;
  /** Per head: descriptors the chain holds (0: the head is not in flight), writable bytes, and the caller's token. */
  private readonly chainDescriptors: Uint16Array;
  private readonly writableLengths: Uint32Array;
  private readonly tokens: (T | undefined)[];
  private inFlightCount = 0;
  /** Out-value of writeDirect (a field, so that no array is allocated per add). */
  private chainLength = 0;

  private availIdx = 0;
  private kickedAvail = 0;
  private lastUsed = 0;
  private usedShadow = 0;
  private callbacksEnabled = true;
  private isBroken = false;

  // VIRTIO_F_IN_ORDER: heads in the order they were made available, and the batch being returned.
  private readonly order: Uint16Array;
  private orderFirst = 0;
  private batchRemaining = 0;
  private batchLastLength = 0;

  constructor(layout: SplitQueueLayout, options: SplitDriverQueueOptions) {
    if (!LITTLE_ENDIAN_HOST) throw new RingError('INVALID_ARGUMENT', 'big-endian hosts are not supported');
    const { descRegion, availRegion, usedRegion } = validateSplitLayout(layout, options.memory);
    const size = layout.size;
    this.ring = Object.freeze({ size, descTable: layout.descTable, availRing: layout.availRing, usedRing: layout.usedRing });
    this.size = size;
    this.mask = size - 1;
    this.memory = options.memory;
    this.features = resolveFeatures(options.features);
    this.queueIndex = options.index;
    this.eventIdx = this.features.eventIdx;
    this.inOrder = this.features.inOrder;

    this.descU32 = descRegion.u32;
    this.descBase32 = (descRegion.offset + layout.descTable - descRegion.start) / 4;
    const availBase16 = (availRegion.offset + layout.availRing - availRegion.start) / 2;
    this.availU16 = availRegion.u16;
    this.availFlagsIndex = availBase16 + AVAIL_FLAGS_OFFSET / 2;
    this.availIdxIndex = availBase16 + AVAIL_IDX_OFFSET / 2;
    this.availRingIndex = availBase16 + AVAIL_RING_OFFSET / 2;
    this.usedEventIndex = this.availRingIndex + size;
    const usedBase16 = (usedRegion.offset + layout.usedRing - usedRegion.start) / 2;
    this.usedU16 = usedRegion.u16;
    this.usedU32 = usedRegion.u32;
    this.usedFlagsIndex = usedBase16 + USED_FLAGS_OFFSET / 2;
    this.usedIdxIndex = usedBase16 + USED_IDX_OFFSET / 2;
    this.usedRingIndex32 = (usedBase16 + USED_RING_OFFSET / 2) / 2;
    this.availEventIndex = usedBase16 + (USED_RING_OFFSET + 8 * size) / 2;

    const threshold = options.indirectThreshold ?? 2;
    if (!Number.isInteger(threshold) || threshold < 1) throw new RingError('INVALID_ARGUMENT', 'indirectThreshold must be a positive integer');
    this.indirectThreshold = threshold;
    const area = options.indirectArea;
    if (this.features.indirect && area !== undefined) {
      const { address, maxDescriptors } = area;
      if (!Number.isInteger(maxDescriptors) || maxDescriptors < 2 || maxDescriptors > size) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea.maxDescriptors must be in 2..queue size (§2.7.5.3.1)', { length: maxDescriptors });
      }
      if (!Number.isSafeInteger(address) || address < 0 || address % DESCRIPTOR_SIZE !== 0) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea.address must be 16-byte aligned', { address });
      }
      let region;
      try {
        region = options.memory.regionFor(address, indirectAreaSize(size, maxDescriptors), 'indirect area');
      } catch (cause) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea must lie inside one guest memory region', { address }, { cause });
      }
      this.indirectU32 = region.u32;
      this.indirectBase32 = (region.offset + address - region.start) / 4;
      this.indirectAddress = address;
      this.indirectMax = maxDescriptors;
    }

    this.nextFree = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.nextFree[i] = (i + 1) & 0xffff;
    this.free = size;
    this.chainDescriptors = new Uint16Array(size);
    this.writableLengths = new Uint32Array(size);
    this.tokens = new Array<T | undefined>(size).fill(undefined);
    this.order = new Uint16Array(size);

    options.memory.fill(layout.descTable, descTableSize(size));
    options.memory.fill(layout.availRing, availRingSize(size));
    options.memory.fill(layout.usedRing, usedRingSize(size));
  }

  get freeCount(): number {
    return this.free;
  }

  /** True after the device returned an invalid used element. */
  get broken(): boolean {
    return this.isBroken;
  }

  /** Buffers added and not yet returned by `getUsed`. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  add(readable: readonly Segment[], writable: readonly Segment[], token: T): void {
    if (this.isBroken) throw new RingError('QUEUE_BROKEN', 'queue is broken: the device returned an invalid used element', { queue: this.queueIndex });
    const readableCount = readable.length;
    const writableCount = writable.length;
    const n = readableCount + writableCount;
    if (n === 0) throw new RingError('INVALID_ARGUMENT', 'a buffer needs at least one segment', { queue: this.queueIndex });
    const indirect = n > 1 && this.indirectU32 !== null && n <= this.indirectMax && (n >= this.indirectThreshold || n > this.free);
    const needed = indirect ? 1 : n;
    if (needed > this.free) {
      // Invalid segments are reported before a full ring, as a caller that waits for room on
      // QUEUE_FULL expects (checked here, off the hot path).
      this.checkSegments(readable, writable);
      // §2.7.5.3.1: a chain MUST NOT be longer than the queue size; that one can never fit.
      if (n > this.size) throw new RingError('INVALID_ARGUMENT', `a chain of ${n} segments exceeds the queue size`, { queue: this.queueIndex, length: n });
      throw new RingError('QUEUE_FULL', `${needed} descriptors needed, ${this.free} free`, { queue: this.queueIndex, length: needed });
    }

    // One pass writes and checks the segments into descriptors that are still free (or into the
    // head's private indirect table): nothing is published and no queue state moves until every
    // segment has passed, so a throw leaves the queue as it was.
    const head = this.freeHead;
    let readableLength = 0;
    let writableLength = 0;
    let afterChain: number;
    if (indirect) {
      // §2.7.5.3.1: table entries chain by index from 0; the descriptor naming it has only INDIRECT.
      const tableBase = this.indirectBase32 + head * this.indirectMax * 4;
      readableLength = this.writeTable(readable, readableCount, 0, tableBase, 0, writableCount === 0);
      writableLength = this.writeTable(writable, writableCount, VIRTQ_DESC_F_WRITE, tableBase, readableCount, true);
      this.checkTotal(readableLength + writableLength);
      const tableAddress = this.indirectAddress + head * this.indirectMax * DESCRIPTOR_SIZE;
      const d = this.descU32;
      const b = this.descBase32 + head * 4;
      d[b] = tableAddress >>> 0;
      d[b + 1] = highWord(tableAddress);
      d[b + 2] = n * DESCRIPTOR_SIZE;
      d[b + 3] = VIRTQ_DESC_F_INDIRECT;
      afterChain = this.nextFree[head]!;
    } else if (n === 1) {
      // The common single-segment buffer, written out.
      const isWritable = readableCount === 0;
      const s = isWritable ? writable[0]! : readable[0]!;
      const address = s.address;
      const length = s.length;
      if (!isValidAddress(address) || length >>> 0 !== length) throw this.segmentError(address, length);
      const d = this.descU32;
      const b = this.descBase32 + head * 4;
      const next = this.nextFree[head]!;
      d[b] = address >>> 0;
      d[b + 1] = address > 0xffff_ffff ? Math.floor(address / TWO_POW_32) : 0;
      d[b + 2] = length;
      d[b + 3] = (isWritable ? VIRTQ_DESC_F_WRITE : 0) | (next << 16);
      if (isWritable) writableLength = length;
      afterChain = next;
    } else {
      // The chain takes the first n free descriptors, linked as the free list already is.
      const afterReadable = this.writeDirect(readable, readableCount, 0, head, writableCount === 0);
      readableLength = this.chainLength;
      afterChain = this.writeDirect(writable, writableCount, VIRTQ_DESC_F_WRITE, afterReadable, true);
      writableLength = this.chainLength;
      this.checkTotal(readableLength + writableLength);
    }
    this.freeHead = afterChain;
    this.free -= needed;
    this.chainDescriptors[head] = needed;
    this.writableLengths[head] = writableLength;
    this.tokens[head] = token;
    if (this.inOrder) this.order[(this.orderFirst + this.inFlightCount) & this.mask] = head;
    this.inFlightCount++;

    // §2.7.13.2-3: put the head in the ring, then (memory barrier) move idx. Atomics.store orders both.
    const availIdx = this.availIdx;
    this.availU16[this.availRingIndex + (availIdx & this.mask)] = head;
    const nextIdx = (availIdx + 1) & 0xffff;
    this.availIdx = nextIdx;
    Atomics.store(this.availU16, this.availIdxIndex, nextIdx);
  }

  kickPrepare(): boolean {
    const newIdx = this.availIdx;
    const oldIdx = this.kickedAvail;
    this.kickedAvail = newIdx;
    if (newIdx === oldIdx) return false;
    // §2.7.13.4: read avail_event / flags after publishing idx (Atomics: ordered).
    if (this.eventIdx) return needEvent(Atomics.load(this.usedU16, this.availEventIndex), newIdx, oldIdx);
    return (Atomics.load(this.usedU16, this.usedFlagsIndex) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  getUsed(): UsedBuffer<T> | null {
    if (this.isBroken) throw new RingError('QUEUE_BROKEN', 'queue is broken: the device returned an invalid used element', { queue: this.queueIndex });
    if (this.batchRemaining > 0) return this.nextInOrder();
    let lastUsed = this.lastUsed;
    if (lastUsed === this.usedShadow) {
      this.usedShadow = Atomics.load(this.usedU16, this.usedIdxIndex);
      if (lastUsed === this.usedShadow) return null;
      // The device can only return what is in flight.
      if (((this.usedShadow - lastUsed) & 0xffff) > this.inFlightCount) {
        throw this.badUsed(`used idx moved by ${(this.usedShadow - lastUsed) & 0xffff} with ${this.inFlightCount} buffers in flight`, undefined);
      }
    }
    const slot = this.usedRingIndex32 + (lastUsed & this.mask) * 2;
    const id = this.usedU32[slot]!;
    const length = this.usedU32[slot + 1]!;
    if (id >= this.size || this.chainDescriptors[id] === 0) throw this.badUsed(`used id ${id} is not in flight`, id);
    if (length > this.writableLengths[id]!) throw this.badUsed(`used length ${length} exceeds the writable length ${this.writableLengths[id]}`, id, length);
    if (this.inOrder) {
      // §2.7.9: one used entry may stand for a batch ending at `id`; the batch is the oldest buffers.
      let k = 0;
      while (k < this.inFlightCount && this.order[(this.orderFirst + k) & this.mask] !== id) k++;
      const available = (this.usedShadow - lastUsed) & 0xffff;
      if (k >= this.inFlightCount || k + 1 > available) throw this.badUsed(`in-order used id ${id} does not close a valid batch`, id);
      lastUsed = (lastUsed + k + 1) & 0xffff;
      this.lastUsed = lastUsed;
      this.batchRemaining = k + 1;
      this.batchLastLength = length;
      if (this.callbacksEnabled && this.eventIdx) this.availU16[this.usedEventIndex] = lastUsed;
      return this.nextInOrder();
    }
    lastUsed = (lastUsed + 1) & 0xffff;
    this.lastUsed = lastUsed;
    // Keep used_event just behind us while callbacks are on (Linux does the same).
    if (this.callbacksEnabled && this.eventIdx) this.availU16[this.usedEventIndex] = lastUsed;
    return { token: this.release(id), length };
  }

  disableCallback(): void {
    this.callbacksEnabled = false;
    // With EVENT_IDX, put used_event just behind lastUsed: the device passes it only after 2^16 entries.
    if (this.eventIdx) Atomics.store(this.availU16, this.usedEventIndex, (this.lastUsed - 1) & 0xffff);
    else Atomics.store(this.availU16, this.availFlagsIndex, VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  enableCallback(): boolean {
    this.callbacksEnabled = true;
    if (this.eventIdx) Atomics.store(this.availU16, this.usedEventIndex, this.lastUsed);
    else Atomics.store(this.availU16, this.availFlagsIndex, 0);
    // §2.7.10: re-check after publishing, or a completion that raced the write is never signalled.
    if (this.batchRemaining > 0) return false;
    this.usedShadow = Atomics.load(this.usedU16, this.usedIdxIndex);
    return this.usedShadow === this.lastUsed;
  }

  detachUnused(): T[] {
    const tokens: T[] = [];
    if (this.inOrder) {
      // release() advances orderFirst.
      while (this.inFlightCount > 0) tokens.push(this.release(this.order[this.orderFirst]!));
    } else {
      for (let head = 0; head < this.size; head++) if (this.chainDescriptors[head] !== 0) tokens.push(this.release(head));
    }
    this.batchRemaining = 0;
    return tokens;
  }

  /**
   * After a device reset (and `detachUnused()`): zeroes the ring memory and indices so the
   * queue can be handed to the device again. Throws INVALID_ARGUMENT while buffers are in flight.
   */
  reset(): void {
    if (this.inFlightCount !== 0) throw new RingError('INVALID_ARGUMENT', 'detachUnused() before reset()', { queue: this.queueIndex });
    this.availIdx = 0;
    this.kickedAvail = 0;
    this.lastUsed = 0;
    this.usedShadow = 0;
    this.callbacksEnabled = true;
    this.isBroken = false;
    this.orderFirst = 0;
    this.memory.fill(this.ring.descTable, descTableSize(this.size));
    this.memory.fill(this.ring.availRing, availRingSize(this.size));
    this.memory.fill(this.ring.usedRing, usedRingSize(this.size));
  }

  /**
   * Checks and writes `count` segments into free descriptors from `first`; returns the descriptor
   * after them and leaves the sum of their lengths in `chainLength`.
   */
  private writeDirect(segments: readonly Segment[], count: number, flags: number, first: number, endsChain: boolean): number {
    const d = this.descU32;
    const nextFree = this.nextFree;
    const base = this.descBase32;
    let total = 0;
    let i = first;
    for (let k = 0; k < count; k++) {
      const s = segments[k]!;
      const address = s.address;
      const length = s.length;
      if (!isValidAddress(address) || length >>> 0 !== length) throw this.segmentError(address, length);
      total += length;
      const b = base + i * 4;
      const next = nextFree[i]!;
      d[b] = address >>> 0;
      d[b + 1] = highWord(address);
      d[b + 2] = length;
      d[b + 3] = (endsChain && k === count - 1 ? flags : flags | VIRTQ_DESC_F_NEXT) | (next << 16);
      i = next;
    }
    this.chainLength = total;
    return i;
  }

  /** Checks and writes `count` segments into an indirect table from entry `first`, each linked to the next entry; returns their total length. */
  private writeTable(segments: readonly Segment[], count: number, flags: number, tableBase: number, first: number, endsChain: boolean): number {
    const t = this.indirectU32!;
    let total = 0;
    for (let k = 0; k < count; k++) {
      const s = segments[k]!;
      const address = s.address;
      const length = s.length;
      if (!isValidAddress(address) || length >>> 0 !== length) throw this.segmentError(address, length);
      total += length;
      const entry = first + k;
      const b = tableBase + entry * 4;
      t[b] = address >>> 0;
      t[b + 1] = highWord(address);
      t[b + 2] = length;
      t[b + 3] = (endsChain && k === count - 1 ? flags : flags | VIRTQ_DESC_F_NEXT) | ((entry + 1) << 16);
    }
    return total;
  }

  private segmentError(address: number, length: number): RingError {
    return new RingError('INVALID_ARGUMENT', 'segment address or length is invalid', { queue: this.queueIndex, address, length });
  }

  /** Throws INVALID_ARGUMENT for the first invalid segment, or for a total past 2^32 - 1. */
  private checkSegments(readable: readonly Segment[], writable: readonly Segment[]): void {
    let total = 0;
    for (const list of [readable, writable]) {
      for (const s of list) {
        if (!isValidAddress(s.address) || s.length >>> 0 !== s.length) throw this.segmentError(s.address, s.length);
        total += s.length;
      }
    }
    this.checkTotal(total);
  }

  /** §2.7.5.2: the driver MUST NOT add a chain longer than 2^32 bytes. */
  private checkTotal(total: number): void {
    if (total > MAX_CHAIN_LENGTH) {
      throw new RingError('INVALID_ARGUMENT', 'chain length exceeds 2^32 - 1 bytes', { queue: this.queueIndex, length: total });
    }
  }

  private nextInOrder(): UsedBuffer<T> {
    const head = this.order[this.orderFirst]!;
    // §2.7.9: skipped buffers "are assumed to have been used (read or written) by the device completely".
    const length = --this.batchRemaining === 0 ? this.batchLastLength : this.writableLengths[head]!;
    return { token: this.release(head), length };
  }

  /** Frees the descriptors of `head` and returns its token. */
  private release(head: number): T {
    const count = this.chainDescriptors[head]!;
    let tail = head;
    for (let k = 1; k < count; k++) tail = this.nextFree[tail]!;
    this.nextFree[tail] = this.freeHead;
    this.freeHead = head;
    this.free += count;
    const token = this.tokens[head] as T;
    this.tokens[head] = undefined;
    this.chainDescriptors[head] = 0;
    this.inFlightCount--;
    if (this.inOrder) this.orderFirst = (this.orderFirst + 1) & this.mask;
    return token;
  }

  /** Marks the queue broken and returns the error to throw. */
  private badUsed(message: string, id: number | undefined, length?: number): RingError {
    this.isBroken = true;
    return new RingError('INVALID_USED_ELEMENT', message, { queue: this.queueIndex, head: id, length }, { fatal: true });
  }
}
