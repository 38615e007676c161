import type { GuestRegion } from '@virtio-ts/memory';
import {
  DESCRIPTOR_SIZE,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import { RingError } from '../errors.js';
import type { DriverQueue, PackedQueueLayout, QueueFeatures, QueueOptions, Segment, UsedBuffer } from '../types.js';
import { MAX_INDIRECT_DESCRIPTORS } from './descriptor-chain.js';
import { eventSuppressionWord, needsEvent } from './event-suppression.js';
import { PackedRingViews, validatePackedLayout, packedDescRingSize } from './layout.js';

const TWO_POW_32 = 0x1_0000_0000;
const MAX_TOTAL_LENGTH = 0xffffffff;

/**
 * Validates one segment and writes it as a packed descriptor at u32 index `d32` (id, and flags
 * unless `withFlags` is false: the head's flags are stored last). Returns its length, or -1 when
 * the length is not a u32 or the address not an integer in [0, 2^53).
 */
function put(u32: Uint32Array, u16: Uint16Array, d32: number, s: Segment, id: number, flags: number, withFlags: boolean): number {
  const length = s.length;
  const address = s.address;
  if (length >>> 0 !== length || !(address >= 0 && address <= Number.MAX_SAFE_INTEGER && Math.floor(address) === address)) return -1;
  u32[d32] = address >>> 0;
  u32[d32 + 1] = (address / TWO_POW_32) >>> 0;
  u32[d32 + 2] = length;
  u16[d32 * 2 + 6] = id;
  if (withFlags) u16[d32 * 2 + 7] = flags;
  return length;
}

/** Options of {@link PackedDriverQueue}: the same indirect options as the split driver queue. */
export interface PackedDriverQueueOptions extends QueueOptions {
  /**
   * Guest memory reserved for indirect tables (§2.8.7): one table of `maxDescriptors` entries
   * per buffer id, table `id` at `address + id * maxDescriptors * 16`; the area is
   * `size * maxDescriptors * 16` bytes, 16-aligned, inside one region. A table per id needs no
   * allocator and frees itself when its id comes back. Without it (or without
   * `features.indirect`) every buffer is a chain of ring slots.
   */
  readonly indirectArea?: { readonly address: number; readonly maxDescriptors: number };
  /**
   * Buffers of at least this many segments go through an indirect table (when negotiated and an
   * area is given). Default 2, as Linux does for packed rings. Shorter buffers also go indirect
   * when the ring has too few free slots for them.
   */
  readonly indirectThreshold?: number;
}

/**
 * The driver side of a packed virtqueue (VIRTIO 1.3 §2.8.21–§2.8.22), as Linux's
 * virtio_ring.c does it: buffer ids from a free list (distinct from ring positions), a chain
 * written over consecutive slots with the head's flags stored last, used descriptors read at
 * the driver's used position and skipped by the buffer's slot count, IN_ORDER batches, and
 * event suppression (§2.8.10) for kicks and interrupts.
 *
 * The constructor zeroes the three ring areas: call it before the device starts (DRIVER_OK).
 * A device that returns an unknown id or a length longer than the buffer's writable part makes
 * `getUsed()` throw `INVALID_USED_ELEMENT` (fatal): the queue is broken until `detachUnused()`.
 *
 * @example
 * ```ts
 * const driver = new PackedDriverQueue<number>(packedQueueLayout(64, 0x1000), {
 *   memory,
 *   features: { eventIdx: true, indirect: true, inOrder: false },
 *   indirectArea: { address: 0x10000, maxDescriptors: 8 }, // 64 * 8 * 16 bytes
 * });
 * driver.add([header, ...dataOut], [status], 1); // 2+ segments: one slot, an indirect table
 * if (driver.kickPrepare()) notify();
 * driver.disableCallback(); // polling...
 * for (let u = driver.getUsed(); u !== null; u = driver.getUsed()) complete(u.token, u.length);
 * if (!driver.enableCallback()) poll(); // completions arrived meanwhile: do not sleep
 * ```
 */
export class PackedDriverQueue<T> implements DriverQueue<T> {
  readonly layout = 'packed' as const;
  readonly size: number;
  readonly features: QueueFeatures;
  readonly ring: PackedQueueLayout;
  private readonly eventIdx: boolean;

  private readonly views: PackedRingViews;
  private readonly index: number;
  private readonly tables: Uint32Array | null = null;
  private readonly tablesU16: Uint16Array | null = null;
  /** u32 index of indirect table 0. */
  private readonly table32: number = 0;
  /** Guest address of indirect table 0. */
  private readonly tableBase: number = 0;
  private readonly entriesPerTable: number = 0;
  private readonly indirectThreshold: number;

  private nextAvail = 0;
  private availWrapCounter = true;
  /** AVAIL/USED bits that make a descriptor available in the current lap. */
  private availFlags = VIRTQ_DESC_F_AVAIL;
  private lastUsed = 0;
  private usedWrapCounter = true;
  private free: number;
  /** Stack of free buffer ids. */
  private readonly freeIds: Uint16Array;
  private freeTop: number;
  private readonly tokens: (T | undefined)[];
  private readonly inFlight: Uint8Array;
  private readonly slots: Uint16Array;
  private readonly writable: Uint32Array;
  /** IN_ORDER: ids in the order they were added. */
  private readonly order: Uint16Array;
  private orderHead = 0;
  private orderCount = 0;
  /** IN_ORDER: id of the last buffer of the batch being returned, or -1. */
  private batchEnd = -1;
  private batchLength = 0;
  /** Slots made available since the last kickPrepare(). */
  private addedSinceKick = 0;
  private callbacks = true;
  private isBroken = false;

  constructor(layout: PackedQueueLayout, options: PackedDriverQueueOptions) {
    const resolved = validatePackedLayout(layout, options.memory);
    const size = layout.size;
    this.size = size;
    this.ring = Object.freeze({ size, descRing: layout.descRing, driverEvent: layout.driverEvent, deviceEvent: layout.deviceEvent });
    this.features = Object.freeze({
      eventIdx: options.features?.eventIdx === true,
      indirect: options.features?.indirect === true,
      inOrder: options.features?.inOrder === true,
    });
    this.eventIdx = this.features.eventIdx;
    this.index = options.index ?? 0;
    this.views = new PackedRingViews(layout, resolved);
    const threshold = options.indirectThreshold ?? 2;
    if (!Number.isInteger(threshold) || threshold < 1) throw new RingError('INVALID_ARGUMENT', 'indirectThreshold must be a positive integer');
    this.indirectThreshold = threshold;
    const area = options.indirectArea;
    if (this.features.indirect && area !== undefined) {
      const { address, maxDescriptors: entriesPerTable } = area;
      // §2.8.19 bounds a list by what the device allows; ours accepts tables up to MAX_INDIRECT_DESCRIPTORS.
      if (!Number.isInteger(entriesPerTable) || entriesPerTable < 2 || entriesPerTable > MAX_INDIRECT_DESCRIPTORS) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea.maxDescriptors must be in 2..32768', { length: entriesPerTable });
      }
      if (!Number.isSafeInteger(address) || address < 0 || address % DESCRIPTOR_SIZE !== 0) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea.address must be 16-byte aligned', { address });
      }
      const bytes = size * entriesPerTable * DESCRIPTOR_SIZE;
      let region: GuestRegion;
      try {
        region = options.memory.regionFor(address, bytes, 'indirect tables');
      } catch (cause) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea must lie inside one guest memory region', { address, length: bytes }, { cause });
      }
      const ringEnd = layout.descRing + packedDescRingSize(size);
      if (address < ringEnd && layout.descRing < address + bytes) {
        throw new RingError('INVALID_ARGUMENT', 'indirectArea overlaps the descriptor ring', { address });
      }
      this.tables = region.u32;
      this.tablesU16 = region.u16;
      this.table32 = (region.offset + address - region.start) >>> 2;
      this.tableBase = address;
      this.entriesPerTable = entriesPerTable;
    }
    this.free = size;
    this.freeIds = new Uint16Array(size);
    this.freeTop = size;
    this.tokens = new Array<T | undefined>(size).fill(undefined);
    this.inFlight = new Uint8Array(size);
    this.slots = new Uint16Array(size);
    this.writable = new Uint32Array(size);
    this.order = new Uint16Array(size);
    this.reinitialize();
  }

  /** Ring slots free for `add` (an indirect buffer takes one). */
  get freeCount(): number {
    return this.free;
  }

  /** True after the device returned an invalid used descriptor. */
  get broken(): boolean {
    return this.isBroken;
  }

  add(readable: readonly Segment[], writable: readonly Segment[], token: T): void {
    if (this.isBroken) throw new RingError('QUEUE_BROKEN', 'queue is broken; reset the device', { queue: this.index });
    const nr = readable.length;
    const n = nr + writable.length;
    if (n === 1 && this.free > 0) {
      this.addOne(nr === 1 ? readable[0]! : writable[0]!, nr === 0, token);
      return;
    }
    if (n === 0) throw new RingError('INVALID_ARGUMENT', 'a buffer needs at least one segment', { queue: this.index });
    // entriesPerTable is 0 without indirect tables.
    const indirect = n > 1 && n <= this.entriesPerTable && (n >= this.indirectThreshold || n > this.free);
    const needed = indirect ? 1 : n;
    if (needed > this.size) throw new RingError('INVALID_ARGUMENT', 'buffer has more segments than the queue size', { queue: this.index, length: n });
    if (needed > this.free) throw new RingError('QUEUE_FULL', 'not enough free descriptors', { queue: this.index, length: needed });
    // One pass: validate each segment as it is written. Nothing is visible to the device until
    // the head's flags are stored, so a bad segment only costs the id back (no half-published buffer).
    const id = this.freeIds[--this.freeTop]!;
    const size = this.size;
    const u32 = this.views.descU32;
    const u16 = this.views.descU16;
    const base32 = this.views.desc32;
    const head = this.nextAvail;
    const headFlags = this.availFlags;
    let headWord = 0;
    let total = 0;
    let writableLength = 0;
    let bad = -1;
    if (indirect) {
      // §2.8.7: the table holds the segments; only VIRTQ_DESC_F_WRITE is valid inside it.
      const t32 = this.tables!;
      const t16 = this.tablesU16!;
      let e = this.table32 + id * this.entriesPerTable * 4;
      for (let i = 0; i < n; i++) {
        const length = put(t32, t16, e, i < nr ? readable[i]! : writable[i - nr]!, 0, i < nr ? 0 : VIRTQ_DESC_F_WRITE, true);
        if (length < 0) {
          bad = i;
          break;
        }
        total += length;
        if (i >= nr) writableLength += length;
        e += 4;
      }
      headWord = headFlags | VIRTQ_DESC_F_INDIRECT;
      const address = this.tableBase + id * this.entriesPerTable * DESCRIPTOR_SIZE;
      const d = base32 + head * 4;
      u32[d] = address >>> 0;
      u32[d + 1] = (address / TWO_POW_32) >>> 0;
      u32[d + 2] = n * DESCRIPTOR_SIZE;
      u16[d * 2 + 6] = id;
    } else {
      // §2.8.21: write every descriptor, then make the first one available last (§2.8.17).
      // §2.8.6: the buffer id goes in the last descriptor; Linux writes it in each, so do we.
      let slot = head;
      let flags = headFlags;
      for (let i = 0; i < n; i++) {
        let word = flags;
        if (i < n - 1) word |= VIRTQ_DESC_F_NEXT;
        if (i >= nr) word |= VIRTQ_DESC_F_WRITE;
        if (i === 0) headWord = word;
        const length = put(u32, u16, base32 + slot * 4, i < nr ? readable[i]! : writable[i - nr]!, id, word, i !== 0);
        if (length < 0) {
          bad = i;
          break;
        }
        total += length;
        if (i >= nr) writableLength += length;
        if (++slot === size) {
          slot = 0;
          flags ^= VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;
        }
      }
    }
    if (bad >= 0 || total > MAX_TOTAL_LENGTH) {
      this.freeTop++; // the id goes back; nothing was published
      if (!indirect) {
        // Take back the flags written after the head: a later, shorter buffer at this head must
        // not leave them looking available to the device. 0 is available in no lap.
        const written = bad >= 0 ? bad : n;
        let slot = head;
        for (let i = 1; i < written; i++) {
          if (++slot === size) slot = 0;
          u16[(base32 + slot * 4) * 2 + 7] = 0;
        }
      }
      if (bad >= 0) {
        const s = bad < nr ? readable[bad]! : writable[bad - nr]!;
        throw new RingError('INVALID_ARGUMENT', 'segment needs a u32 length and a guest address', { queue: this.index, address: s.address, length: s.length });
      }
      throw new RingError('INVALID_ARGUMENT', 'buffer lengths sum past 2^32 - 1', { queue: this.index });
    }
    this.advance(needed);
    this.tokens[id] = token;
    this.inFlight[id] = 1;
    this.slots[id] = needed;
    this.writable[id] = writableLength;
    if (this.features.inOrder) {
      let tail = this.orderHead + this.orderCount;
      if (tail >= size) tail -= size;
      this.order[tail] = id;
      this.orderCount++;
    }
    // Publication point (release): the device reads the rest after it sees these flags.
    Atomics.store(u16, (base32 + head * 4) * 2 + 7, headWord);
  }

  /** The one-segment case of add(), without loops (the common case for many devices). */
  private addOne(segment: Segment, isWritable: boolean, token: T): void {
    const length = segment.length;
    const address = segment.address;
    if (length >>> 0 !== length || !(address >= 0 && Number.isSafeInteger(address))) {
      throw new RingError('INVALID_ARGUMENT', 'segment needs a u32 length and a guest address', { queue: this.index, address, length });
    }
    const id = this.freeIds[--this.freeTop]!;
    const views = this.views;
    const head = this.nextAvail;
    const d = views.desc32 + head * 4;
    const u32 = views.descU32;
    u32[d] = address >>> 0;
    u32[d + 1] = (address / TWO_POW_32) >>> 0;
    u32[d + 2] = length;
    const flagsIndex = views.desc16 + head * 8 + 7;
    views.descU16[flagsIndex - 1] = id;
    const headWord = isWritable ? this.availFlags | VIRTQ_DESC_F_WRITE : this.availFlags;
    this.advance(1);
    this.tokens[id] = token;
    this.inFlight[id] = 1;
    this.slots[id] = 1;
    this.writable[id] = isWritable ? length : 0;
    if (this.features.inOrder) {
      let tail = this.orderHead + this.orderCount;
      if (tail >= this.size) tail -= this.size;
      this.order[tail] = id;
      this.orderCount++;
    }
    // Publication point (release): the device reads the rest after it sees these flags.
    Atomics.store(views.descU16, flagsIndex, headWord);
  }

  kickPrepare(): boolean {
    const word = Atomics.load(this.views.deviceEventU32, this.views.deviceEvent32);
    const result = needsEvent(word, this.features.eventIdx, this.nextAvail, this.availWrapCounter, this.addedSinceKick, this.size);
    this.addedSinceKick = 0;
    return result;
  }

  getUsed(): UsedBuffer<T> | null {
    if (this.isBroken) throw new RingError('QUEUE_BROKEN', 'queue is broken; reset the device', { queue: this.index });
    if (this.batchEnd >= 0) return this.nextOfBatch();
    const slot = this.lastUsed;
    const u16 = this.views.descU16;
    const flags = Atomics.load(u16, this.views.desc16 + slot * 8 + 7);
    // §2.8.1: used when AVAIL and USED both equal the used wrap counter.
    const wrap = this.usedWrapCounter;
    if (((flags & VIRTQ_DESC_F_AVAIL) !== 0) !== wrap || ((flags & VIRTQ_DESC_F_USED) !== 0) !== wrap) return null;
    const id = u16[this.views.desc16 + slot * 8 + 6]!;
    let length = this.views.descU32[this.views.desc32 + slot * 4 + 2]!;
    if (id >= this.size || this.inFlight[id] === 0) this.broke('device returned a buffer id the driver did not make available', id, length);
    // §2.8.3: "Element Length is reserved for used descriptors without the VIRTQ_DESC_F_WRITE flag, and is ignored by drivers."
    if ((flags & VIRTQ_DESC_F_WRITE) === 0) length = 0;
    else if (length > this.writable[id]!) this.broke('device wrote more than the buffer\'s writable length', id, length);
    if (this.features.inOrder) {
      // §2.8.8: one used descriptor for a batch; the buffers before it in add order come back whole.
      this.batchEnd = id;
      this.batchLength = length;
      return this.nextOfBatch();
    }
    return this.complete(id, length);
  }

  disableCallback(): void {
    this.callbacks = false;
    Atomics.store(this.views.driverEventU32, this.views.driverEvent32, eventSuppressionWord(RING_EVENT_FLAGS_DISABLE, 0, false));
  }

  enableCallback(): boolean {
    this.callbacks = true;
    if (this.features.eventIdx) this.publishUsedEvent();
    else Atomics.store(this.views.driverEventU32, this.views.driverEvent32, eventSuppressionWord(RING_EVENT_FLAGS_ENABLE, 0, false));
    // Sequentially consistent store, then re-check: a completion written before the device
    // read our flags is seen here (§2.8.10, the notification race).
    return !this.hasUsed();
  }

  /** True when a used buffer is waiting for `getUsed()`. */
  hasUsed(): boolean {
    if (this.batchEnd >= 0) return true;
    const flags = Atomics.load(this.views.descU16, this.views.desc16 + this.lastUsed * 8 + 7);
    const wrap = this.usedWrapCounter;
    return ((flags & VIRTQ_DESC_F_AVAIL) !== 0) === wrap && ((flags & VIRTQ_DESC_F_USED) !== 0) === wrap;
  }

  /**
   * Tokens of every buffer added and not yet used (in add order with IN_ORDER, else in id order); then the queue starts over as
   * new (positions 0, wrap counters 1, ring areas zeroed so no stale descriptor looks
   * available). Call it after a device reset, as Linux's virtqueue_detach_unused_buf + reinit.
   */
  detachUnused(): T[] {
    const tokens: T[] = [];
    if (this.features.inOrder) {
      for (let i = 0, k = this.orderHead; i < this.orderCount; i++) {
        tokens.push(this.tokens[this.order[k]!] as T);
        if (++k === this.size) k = 0;
      }
    } else {
      for (let id = 0; id < this.size; id++) if (this.inFlight[id] !== 0) tokens.push(this.tokens[id] as T);
    }
    this.reinitialize();
    return tokens;
  }

  private reinitialize(): void {
    const v = this.views;
    v.descU32.fill(0, v.desc32, v.desc32 + this.size * 4);
    Atomics.store(v.driverEventU32, v.driverEvent32, 0);
    Atomics.store(v.deviceEventU32, v.deviceEvent32, 0);
    this.nextAvail = 0;
    this.availWrapCounter = true;
    this.availFlags = VIRTQ_DESC_F_AVAIL;
    this.lastUsed = 0;
    this.usedWrapCounter = true;
    this.free = this.size;
    for (let i = 0; i < this.size; i++) this.freeIds[i] = this.size - 1 - i; // pop order 0, 1, 2, ...
    this.freeTop = this.size;
    this.tokens.fill(undefined);
    this.inFlight.fill(0);
    this.orderHead = 0;
    this.orderCount = 0;
    this.batchEnd = -1;
    this.addedSinceKick = 0;
    this.callbacks = true;
    this.isBroken = false;
  }

  private advance(count: number): void {
    let next = this.nextAvail + count;
    if (next >= this.size) {
      next -= this.size;
      this.availWrapCounter = !this.availWrapCounter;
      this.availFlags ^= VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;
    }
    this.nextAvail = next;
    this.free -= count;
    this.addedSinceKick += count;
  }

  private nextOfBatch(): UsedBuffer<T> {
    const id = this.order[this.orderHead]!;
    if (++this.orderHead === this.size) this.orderHead = 0;
    this.orderCount--;
    if (id === this.batchEnd) {
      this.batchEnd = -1;
      return this.complete(id, this.batchLength);
    }
    return this.complete(id, this.writable[id]!);
  }

  private complete(id: number, length: number): UsedBuffer<T> {
    const token = this.tokens[id] as T;
    this.tokens[id] = undefined;
    this.inFlight[id] = 0;
    const count = this.slots[id]!;
    let next = this.lastUsed + count;
    if (next >= this.size) {
      next -= this.size;
      this.usedWrapCounter = !this.usedWrapCounter;
    }
    this.lastUsed = next;
    this.free += count;
    this.freeIds[this.freeTop++] = id;
    if (this.callbacks && this.eventIdx && this.batchEnd < 0) {
      // As Linux does after each get_buf in DESC mode. A plain store: a hint; enableCallback()
      // publishes with Atomics and re-checks, which is what makes sleeping safe.
      this.views.driverEventU32[this.views.driverEvent32] = eventSuppressionWord(RING_EVENT_FLAGS_DESC, next, this.usedWrapCounter);
    }
    return { token, length };
  }

  /** §2.8.10: "interrupt me when the device uses the descriptor at my next used position". */
  private publishUsedEvent(): void {
    Atomics.store(
      this.views.driverEventU32,
      this.views.driverEvent32,
      eventSuppressionWord(RING_EVENT_FLAGS_DESC, this.lastUsed, this.usedWrapCounter),
    );
  }

  private broke(message: string, head: number, length: number): never {
    this.isBroken = true;
    throw new RingError('INVALID_USED_ELEMENT', message, { queue: this.index, head, length }, { fatal: true });
  }
}
