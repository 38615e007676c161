import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import { RingError, type RingErrorCode } from '../errors.js';
import type { DescriptorChain, DeviceQueue, PackedQueueLayout, PackedQueueState, QueueFeatures, QueueOptions, UsedElement } from '../types.js';
import { EXTENT_TOO_LONG, PackedChainReader } from './descriptor-chain.js';
import { eventFlags, eventSuppressionWord, needsEvent } from './event-suppression.js';
import { PackedRingViews, validatePackedLayout } from './layout.js';
import { validatePackedState } from './queue-state.js';

/** Writable length recorded for an in-flight buffer restored from a saved state (unknown: any u32 fits). */
const UNKNOWN_WRITABLE = 0xffffffff;

/**
 * The device side of a packed virtqueue (VIRTIO 1.3 §2.8).
 *
 * `pop()` reads the next buffer at the device's position and wrap counter, validates it, and
 * returns it flattened (indirect tables included); `pushUsed()` writes one used descriptor at
 * the device's used position and skips the buffer's slots (§2.8.6). The device tracks, per
 * buffer id, whether it is in flight (a bitmap), the ring slots it took, and its writable length.
 *
 * Errors from `pop()` (a {@link RingError}; the device answers the guest, it never crashes):
 * - **chain errors**, `fatal === false`, the buffer's extent and id are known so the chain is
 *   consumed: `INDIRECT_NOT_NEGOTIATED`, `INDIRECT_WITH_NEXT`, `INDIRECT_TABLE_INVALID_LENGTH`,
 *   `NESTED_INDIRECT`, `CHAIN_TOO_LONG` (an indirect table past {@link MAX_INDIRECT_DESCRIPTORS}),
 *   `READABLE_AFTER_WRITABLE`, `ADDRESS_OUT_OF_RANGE`, `TOTAL_LENGTH_OVERFLOW`. The id is in
 *   `error.context.head`: complete it with `pushUsed(head, 0)`.
 * - **ring errors**, `fatal === true`, the queue is broken (DEVICE_NEEDS_RESET) because no id can
 *   be returned or the ring positions can no longer be trusted: `DESCRIPTOR_INDEX_OUT_OF_RANGE`
 *   (buffer id >= size), `HEAD_IN_FLIGHT` (the id is already held: a used descriptor for it
 *   would be ambiguous), `CHAIN_TOO_LONG` (NEXT still set after `size` slots: the chain can never
 *   end), `AVAIL_INDEX_JUMP` (more slots available than the ring holds: the driver overwrote
 *   slots the device had not used yet, §2.8.16).
 *
 * @example
 * ```ts
 * const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
 * const layout = packedQueueLayout(100, 0x1000); // any size 1..32768
 * const features = { eventIdx: true, indirect: false, inOrder: false };
 * const driver = new PackedDriverQueue<string>(layout, { memory, features });
 * const device = new PackedDeviceQueue(layout, { memory, features });
 * driver.add([{ address: 0x10000, length: 16 }], [{ address: 0x20000, length: 512 }], 'request 1');
 * driver.kickPrepare(); // true: ring the doorbell
 * for (let chain = device.pop(); chain !== null; chain = device.pop()) {
 *   memory.fill(chain.writable[0]!.address, 512, 0xab);
 *   device.pushUsed(chain.head, 512);
 * }
 * device.needsNotification(); // true: interrupt the driver
 * driver.getUsed(); // { token: 'request 1', length: 512 }
 * ```
 */
export class PackedDeviceQueue implements DeviceQueue {
  readonly layout = 'packed' as const;
  readonly size: number;
  readonly features: QueueFeatures;
  private readonly eventIdx: boolean;
  /** Guest addresses of the three areas. */
  readonly ring: PackedQueueLayout;

  private readonly views: PackedRingViews;
  private readonly reader: PackedChainReader;
  private readonly index: number;

  private nextAvail = 0;
  private availWrapCounter = true;
  private nextUsed = 0;
  private usedWrapCounter = true;
  /** 1 when the buffer id is held by the device (popped, not yet used). */
  private readonly inFlightIds: Uint8Array;
  /** Ring slots each in-flight buffer took: how far its used descriptor skips. */
  private readonly slots: Uint16Array;
  /** Writable bytes of each in-flight buffer: the largest length `pushUsed` accepts. */
  private readonly writable: Uint32Array;
  /** Slots held by in-flight buffers (at most `size`). */
  private inFlightSlots = 0;
  /** Buffers in flight. */
  private inFlightBuffers = 0;
  /** With VIRTIO_F_IN_ORDER only: ids in the order they were popped (a ring of `size`). */
  private readonly order: Uint16Array;
  private orderHead = 0;
  private orderCount = 0;
  /** Used slots written since the last `needsNotification()`. */
  private usedSinceSignal = 0;
  /** True while the device asks the driver for notifications. */
  private notifying = true;
  /** False after restore() until the first needsNotification(). */
  private signalValid = true;
  private isBroken = false;

  constructor(layout: PackedQueueLayout, options: QueueOptions) {
    const resolved = validatePackedLayout(layout, options.memory);
    this.size = layout.size;
    this.ring = Object.freeze({ size: layout.size, descRing: layout.descRing, driverEvent: layout.driverEvent, deviceEvent: layout.deviceEvent });
    this.features = Object.freeze({
      eventIdx: options.features?.eventIdx === true,
      indirect: options.features?.indirect === true,
      inOrder: options.features?.inOrder === true,
    });
    this.eventIdx = this.features.eventIdx;
    this.index = options.index ?? 0;
    this.views = new PackedRingViews(layout, resolved);
    this.reader = new PackedChainReader(this.views, options.memory, this.size, this.features.indirect, this.index);
    this.inFlightIds = new Uint8Array(this.size);
    this.slots = new Uint16Array(this.size);
    this.writable = new Uint32Array(this.size);
    this.order = new Uint16Array(this.size);
  }

  /**
   * Rebuilds a device queue from {@link saveState} output. The state is untrusted (a migration
   * stream, a snapshot file): version, layout (size, alignment, inside guest memory, no overlap),
   * features, positions, wrap counters and the in-flight list (ids unique and < size, slot
   * counts in 1..size, summing to the distance between the avail and used positions) are all
   * checked before anything is allocated in proportion to them. Throws `INVALID_STATE`.
   * The features come from the state (`options.features` is ignored), as in the split queue.
   */
  static restore(state: unknown, options: QueueOptions): PackedDeviceQueue {
    validatePackedState(state, options.memory);
    const queue = new PackedDeviceQueue(state.ring, { ...options, features: state.features });
    queue.nextAvail = state.nextAvail;
    queue.availWrapCounter = state.availWrapCounter;
    queue.nextUsed = state.nextUsed;
    queue.usedWrapCounter = state.usedWrapCounter;
    for (const { id, descriptorCount } of state.inFlight) {
      queue.inFlightIds[id] = 1;
      queue.slots[id] = descriptorCount;
      queue.writable[id] = UNKNOWN_WRITABLE;
      queue.inFlightSlots += descriptorCount;
      queue.inFlightBuffers++;
      if (queue.features.inOrder) queue.order[queue.orderCount++] = id;
    }
    queue.isBroken = state.broken;
    const word = Atomics.load(queue.views.deviceEventU32, queue.views.deviceEvent32);
    queue.notifying = eventFlags(word) !== RING_EVENT_FLAGS_DISABLE;
    queue.signalValid = false;
    return queue;
  }

  get broken(): boolean {
    return this.isBroken;
  }

  /** Buffers popped and not yet returned. */
  /** Buffers popped and not yet returned (the `DeviceQueue` contract). */
  get inFlight(): number {
    return this.inFlightCount;
  }

  get inFlightCount(): number {
    return this.inFlightBuffers;
  }

  pop(): DescriptorChain | null {
    if (this.isBroken) throw new RingError('QUEUE_BROKEN', 'queue is broken; reset it', { queue: this.index }, { fatal: true });
    const position = this.nextAvail;
    const count = this.reader.extent(position, this.availWrapCounter);
    if (count === 0) return null;
    if (count === EXTENT_TOO_LONG) {
      // §2.8.17: "A driver MUST NOT create a descriptor list longer than the Queue Size."
      return this.fail('CHAIN_TOO_LONG', 'descriptor list is longer than the queue size', { descriptor: position });
    }
    const id = this.reader.lastId;
    if (id >= this.size) return this.fail('DESCRIPTOR_INDEX_OUT_OF_RANGE', 'buffer id is not below the queue size', { head: id, descriptor: position });
    if (this.inFlightIds[id] !== 0) return this.fail('HEAD_IN_FLIGHT', 'buffer id made available again while the device holds it', { head: id, descriptor: position });
    if (this.inFlightSlots + count > this.size) {
      // §2.8.16: "A driver MUST NOT change a descriptor unless it observes the VIRTQ_DESC_F_USED
      // bit in its flags being changed": more slots than the ring holds means it did.
      return this.fail('AVAIL_INDEX_JUMP', 'driver made more slots available than the ring holds', { head: id, descriptor: position });
    }
    const result = this.reader.parse(position, count, id);
    // Consume the buffer whether or not it is valid: its id is now the device's to return.
    let next = position + count;
    if (next >= this.size) {
      next -= this.size;
      this.availWrapCounter = !this.availWrapCounter;
    }
    this.nextAvail = next;
    this.inFlightIds[id] = 1;
    this.slots[id] = count;
    this.inFlightSlots += count;
    this.inFlightBuffers++;
    if (this.features.inOrder) {
      let tail = this.orderHead + this.orderCount;
      if (tail >= this.size) tail -= this.size;
      this.order[tail] = id;
      this.orderCount++;
    }
    if (this.notifying && this.eventIdx) {
      // Keep the event at our next position while notifications are on. A plain store: this is
      // a hint; enableNotification() publishes with Atomics and re-checks, which is what makes
      // sleeping safe (the split queue does the same with avail_event).
      this.views.deviceEventU32[this.views.deviceEvent32] = eventSuppressionWord(RING_EVENT_FLAGS_DESC, next, this.availWrapCounter);
    }
    if (result === null) {
      this.writable[id] = 0;
      throw this.reader.lastError!;
    }
    this.writable[id] = result.writableLength;
    return result;
  }

  hasAvailable(): boolean {
    if (this.isBroken) return false;
    return this.reader.extent(this.nextAvail, this.availWrapCounter) !== 0;
  }

  pushUsed(head: number, length: number): void {
    this.checkUsed(head, length, 0);
    this.writeUsed(head, length, this.slots[head]!);
    this.release(head);
  }

  /**
   * Returns several buffers. With VIRTIO_F_IN_ORDER (§2.8.8) the elements must be the oldest
   * in-flight buffers in pop order, and one used descriptor stands for a run of buffers: a
   * descriptor is written only for the last element and for any element whose length is not
   * its whole writable length (§2.8.8: "skipped buffers ... are assumed to have been used ...
   * completely"), so the driver learns every length exactly. The batch is validated as a whole
   * before anything is written. Without IN_ORDER, each element is `pushUsed` in turn.
   */
  pushUsedBatch(elements: readonly UsedElement[]): void {
    if (!this.features.inOrder) {
      for (const element of elements) this.pushUsed(element.head, element.length);
      return;
    }
    const n = elements.length;
    for (let i = 0; i < n; i++) this.checkUsed(elements[i]!.head, elements[i]!.length, i);
    let skipped = 0;
    for (let i = 0; i < n; i++) {
      const { head, length } = elements[i]!;
      skipped += this.slots[head]!;
      if (i === n - 1 || length !== this.writable[head]) {
        this.writeUsed(head, length, skipped);
        skipped = 0;
      }
      this.release(head);
    }
  }

  needsNotification(): boolean {
    const word = Atomics.load(this.views.driverEventU32, this.views.driverEvent32);
    let result = needsEvent(word, this.eventIdx, this.nextUsed, this.usedWrapCounter, this.usedSinceSignal, this.size);
    if (!this.signalValid) {
      // First check after restore(): the queue we replace may have pushed used descriptors and
      // not yet interrupted for them (QEMU's signalled_used_valid). Notify unless disabled.
      this.signalValid = true;
      result = eventFlags(word) !== RING_EVENT_FLAGS_DISABLE;
    }
    this.usedSinceSignal = 0;
    return result;
  }

  disableNotification(): void {
    this.notifying = false;
    Atomics.store(this.views.deviceEventU32, this.views.deviceEvent32, eventSuppressionWord(RING_EVENT_FLAGS_DISABLE, 0, false));
  }

  enableNotification(): boolean {
    this.notifying = true;
    if (this.features.eventIdx) this.publishAvailEvent();
    else Atomics.store(this.views.deviceEventU32, this.views.deviceEvent32, eventSuppressionWord(RING_EVENT_FLAGS_ENABLE, 0, false));
    // The store above is sequentially consistent, so this re-check cannot miss a buffer the
    // driver published before reading our flags (§2.8.10, the notification race).
    return this.hasAvailable();
  }

  reset(): void {
    this.nextAvail = 0;
    this.availWrapCounter = true;
    this.nextUsed = 0;
    this.usedWrapCounter = true;
    this.inFlightIds.fill(0);
    this.inFlightSlots = 0;
    this.inFlightBuffers = 0;
    this.orderHead = 0;
    this.orderCount = 0;
    this.usedSinceSignal = 0;
    this.notifying = true;
    this.signalValid = true;
    this.isBroken = false;
  }

  /** In-flight ids are listed in pop order with VIRTIO_F_IN_ORDER (the order completion needs), else ascending. */
  saveState(): PackedQueueState {
    const inFlight: { id: number; descriptorCount: number }[] = [];
    if (this.features.inOrder) {
      for (let i = 0, k = this.orderHead; i < this.orderCount; i++) {
        const id = this.order[k]!;
        inFlight.push({ id, descriptorCount: this.slots[id]! });
        if (++k === this.size) k = 0;
      }
    } else {
      for (let id = 0; id < this.size; id++) if (this.inFlightIds[id] !== 0) inFlight.push({ id, descriptorCount: this.slots[id]! });
    }
    return {
      version: 1,
      layout: 'packed',
      ring: { ...this.ring },
      features: { ...this.features },
      nextAvail: this.nextAvail,
      availWrapCounter: this.availWrapCounter,
      nextUsed: this.nextUsed,
      usedWrapCounter: this.usedWrapCounter,
      inFlight,
      broken: this.isBroken,
    };
  }

  /** §2.8.10: "notify me when the driver makes the descriptor at my next position available". */
  private publishAvailEvent(): void {
    Atomics.store(
      this.views.deviceEventU32,
      this.views.deviceEvent32,
      eventSuppressionWord(RING_EVENT_FLAGS_DESC, this.nextAvail, this.availWrapCounter),
    );
  }

  private checkUsed(head: number, length: number, batchIndex: number): void {
    if (this.isBroken) throw new RingError('QUEUE_BROKEN', 'queue is broken; reset it', { queue: this.index }, { fatal: true });
    if (!(head >>> 0 === head && head < this.size && this.inFlightIds[head] !== 0)) {
      throw new RingError('INVALID_USED', 'pushUsed with a buffer id the device does not hold', { queue: this.index, head });
    }
    if (!(length >>> 0 === length && length <= this.writable[head]!)) {
      throw new RingError('INVALID_USED', 'used length is larger than the writable part of the buffer', { queue: this.index, head, length });
    }
    if (this.features.inOrder) {
      // §2.8.8: the device uses buffers in the order they were made available.
      let k = this.orderHead + batchIndex;
      if (k >= this.size) k -= this.size;
      if (batchIndex >= this.orderCount || this.order[k] !== head) {
        throw new RingError('INVALID_USED', 'VIRTIO_F_IN_ORDER: buffers must be used in the order they were made available', { queue: this.index, head });
      }
    }
  }

  /** Writes one used descriptor at the used position and skips `skip` slots (§2.8.6, §2.8.8). */
  private writeUsed(id: number, length: number, skip: number): void {
    const slot = this.nextUsed;
    const views = this.views;
    views.descU32[views.desc32 + slot * 4 + 2] = length;
    views.descU16[views.desc16 + slot * 8 + 6] = id;
    // §2.8.3: len is meaningful only with VIRTQ_DESC_F_WRITE; set it when the buffer had writable space.
    let flags = this.usedWrapCounter ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    if (this.writable[id] !== 0) flags |= VIRTQ_DESC_F_WRITE;
    // Publication point: id and len above become visible no later than the flags (release).
    Atomics.store(views.descU16, views.desc16 + slot * 8 + 7, flags);
    let next = slot + skip;
    if (next >= this.size) {
      next -= this.size;
      this.usedWrapCounter = !this.usedWrapCounter;
    }
    this.nextUsed = next;
    this.usedSinceSignal += skip;
  }

  private release(id: number): void {
    this.inFlightIds[id] = 0;
    this.inFlightSlots -= this.slots[id]!;
    this.inFlightBuffers--;
    if (this.features.inOrder) {
      // checkUsed guaranteed `id` is the oldest.
      if (++this.orderHead === this.size) this.orderHead = 0;
      this.orderCount--;
    }
  }

  private fail(code: RingErrorCode, message: string, context: { head?: number; descriptor?: number }): never {
    this.isBroken = true;
    throw new RingError(code, message, { queue: this.index, ...context }, { fatal: true });
  }
}

