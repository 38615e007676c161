import type { GuestMemory } from '@virtio-ts/memory';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import { RingError, type RingErrorCode } from '../errors.js';
import type { DeviceQueue, QueueFeatures, QueueOptions, SplitQueueLayout, SplitQueueState, UsedElement } from '../types.js';
import { DescriptorChainReader, MAX_CHAIN_LENGTH, type SplitDescriptorChain } from './descriptor-chain.js';
import { AVAIL_FLAGS_OFFSET, AVAIL_IDX_OFFSET, AVAIL_RING_OFFSET, USED_FLAGS_OFFSET, USED_IDX_OFFSET, USED_RING_OFFSET, validateSplitLayout } from './layout.js';
import { restoreSplitState } from './queue-state.js';
import { needEvent, resolveFeatures } from './ring-math.js';

/** `held[head]` of a head the device does not hold. */
const NOT_HELD = -1;

/**
 * The device side of a split virtqueue (VIRTIO 1.3 §2.7): pops validated chains, returns used
 * buffers, and decides when to interrupt the driver.
 *
 * Errors: `pop()` throws a {@link RingError}. A non-fatal one (`error.fatal === false`) consumed
 * one bad chain: its head is in `error.context.head` and the device still owns it, so it must
 * complete it with `pushUsed(head, 0)`; later chains are served. A fatal one (`AVAIL_INDEX_JUMP`,
 * `HEAD_IN_FLIGHT`, a head index out of range) marks the queue broken: the device should set
 * DEVICE_NEEDS_RESET, and every later call throws `QUEUE_BROKEN` until `reset()`.
 *
 * @example
 * ```ts
 * const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
 * const layout = splitQueueLayout(256, 0);
 * const device = new SplitDeviceQueue(layout, { memory, features: { eventIdx: true } });
 * for (let chain = device.pop(); chain !== null; chain = device.pop()) {
 *   const written = serve(chain); // read chain.readable, write chain.writable
 *   device.pushUsed(chain.head, written);
 * }
 * if (device.needsNotification()) interruptDriver();
 * ```
 */
export class SplitDeviceQueue implements DeviceQueue {
  readonly layout = 'split' as const;
  readonly size: number;
  readonly features: QueueFeatures;
  /** The guest addresses of the three areas. */
  readonly ring: SplitQueueLayout;
  readonly memory: GuestMemory;
  private readonly queueIndex: number | undefined;
  private readonly mask: number;
  private readonly reader: DescriptorChainReader;
  private readonly eventIdx: boolean;
  private readonly inOrder: boolean;

  // Cached views and indices (validated once: each area lies in one region).
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

  /** Next avail entry to read (free-running u16) and the last avail idx read from the driver. */
  private nextAvail = 0;
  private availShadow = 0;
  /** Next used idx (free-running u16) and the one at the last `needsNotification()`. */
  private nextUsed = 0;
  private signalledUsed = 0;
  private notificationsEnabled = true;
  private isBroken = false;

  /**
   * Per head: the writable length of the chain while the head is in flight (popped, not yet
   * used; H10: such a head cannot be made available again), {@link NOT_HELD} otherwise. One
   * array for both facts: the hot path touches one slot per head.
   */
  private readonly held: Float64Array;
  private inFlightCount = 0;
  /** VIRTIO_F_IN_ORDER: heads in pop order (a ring of `size`; at most `size` are in flight). */
  private readonly order: Uint16Array;
  private orderFirst = 0;

  constructor(layout: SplitQueueLayout, options: QueueOptions) {
    const { descRegion, availRegion, usedRegion } = validateSplitLayout(layout, options.memory);
    this.ring = Object.freeze({ size: layout.size, descTable: layout.descTable, availRing: layout.availRing, usedRing: layout.usedRing });
    this.size = layout.size;
    this.mask = layout.size - 1;
    this.memory = options.memory;
    this.features = resolveFeatures(options.features);
    this.queueIndex = options.index;
    this.eventIdx = this.features.eventIdx;
    this.inOrder = this.features.inOrder;
    this.reader = new DescriptorChainReader(options.memory, descRegion, layout.descTable, layout.size, this.features.indirect, options.index);

    const availBase16 = (availRegion.offset + layout.availRing - availRegion.start) / 2;
    this.availU16 = availRegion.u16;
    this.availFlagsIndex = availBase16 + AVAIL_FLAGS_OFFSET / 2;
    this.availIdxIndex = availBase16 + AVAIL_IDX_OFFSET / 2;
    this.availRingIndex = availBase16 + AVAIL_RING_OFFSET / 2;
    this.usedEventIndex = this.availRingIndex + layout.size;

    const usedBase16 = (usedRegion.offset + layout.usedRing - usedRegion.start) / 2;
    this.usedU16 = usedRegion.u16;
    this.usedU32 = usedRegion.u32;
    this.usedFlagsIndex = usedBase16 + USED_FLAGS_OFFSET / 2;
    this.usedIdxIndex = usedBase16 + USED_IDX_OFFSET / 2;
    this.usedRingIndex32 = (usedBase16 + USED_RING_OFFSET / 2) / 2;
    this.availEventIndex = usedBase16 + (USED_RING_OFFSET + 8 * layout.size) / 2;

    this.held = new Float64Array(layout.size).fill(NOT_HELD);
    this.order = new Uint16Array(layout.size);
  }

  /**
   * Rebuilds a queue from {@link saveState}'s output. Everything is validated as hostile input
   * (H16): version, layout (size, alignment, areas inside `options.memory`), features, indices
   * and the in-flight heads. Throws `INVALID_STATE` with the reason.
   */
  static restore(state: unknown, options: QueueOptions): SplitDeviceQueue {
    const s = restoreSplitState(state, options.memory);
    const queue = new SplitDeviceQueue(s.ring, { ...options, features: s.features });
    queue.nextAvail = s.nextAvail;
    queue.availShadow = s.nextAvail;
    queue.nextUsed = s.nextUsed;
    queue.signalledUsed = s.nextUsed;
    queue.isBroken = s.broken;
    for (const head of s.inFlight) {
      // In pop order (saveState keeps it for VIRTIO_F_IN_ORDER).
      queue.order[queue.inFlightCount] = head;
      queue.held[head] = MAX_CHAIN_LENGTH; // writable length unknown after restore: accept any length
      queue.inFlightCount++;
    }
    return queue;
  }

  get broken(): boolean {
    return this.isBroken;
  }

  /** Heads popped and not yet returned with `pushUsed`. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  hasAvailable(): boolean {
    if (this.isBroken) return false;
    if (this.availShadow !== this.nextAvail) return true;
    this.availShadow = Atomics.load(this.availU16, this.availIdxIndex);
    return this.availShadow !== this.nextAvail;
  }

  pop(): SplitDescriptorChain | null {
    if (this.isBroken) throw this.brokenError();
    let nextAvail = this.nextAvail;
    if (this.availShadow === nextAvail) {
      // §2.7.13.3.1 (device side): read idx, then the ring entries it covers (Atomics: acquire).
      const availIdx = Atomics.load(this.availU16, this.availIdxIndex);
      if (availIdx === nextAvail) return null;
      // H2: the driver can have at most `size` entries outstanding; more means a corrupt ring.
      if (((availIdx - nextAvail) & 0xffff) > this.size) {
        throw this.breakQueue('AVAIL_INDEX_JUMP', `avail idx moved from ${nextAvail} to ${availIdx}, more than the queue size`, {});
      }
      this.availShadow = availIdx;
    }
    const head = this.availU16[this.availRingIndex + (nextAvail & this.mask)]!;
    nextAvail = (nextAvail + 1) & 0xffff;
    this.nextAvail = nextAvail;
    // §2.7.10: with EVENT_IDX the device publishes how far it has read in avail_event.
    if (this.eventIdx && this.notificationsEnabled) this.usedU16[this.availEventIndex] = nextAvail;
    if (head >= this.size) {
      throw this.breakQueue('DESCRIPTOR_INDEX_OUT_OF_RANGE', `head ${head} is outside the queue`, { descriptor: head });
    }
    const held = this.held;
    // H10: a head the device still holds cannot be made available again.
    if (held[head] !== NOT_HELD) throw this.breakQueue('HEAD_IN_FLIGHT', `head ${head} made available again while in flight`, { head });
    // Held with no writable bytes until the chain is read: an invalid chain is completed with 0.
    held[head] = 0;
    this.inFlightCount++;
    if (this.inOrder) this.order[(this.orderFirst + this.inFlightCount - 1) & this.mask] = head;
    const chain = this.reader.read(head);
    held[head] = chain.writableLength;
    return chain;
  }

  pushUsed(head: number, length: number): void {
    if (this.isBroken) throw this.brokenError();
    this.checkUsed(head, length);
    if (this.inOrder) {
      if (this.order[this.orderFirst] !== head) throw this.usedError('VIRTIO_F_IN_ORDER: buffers must be used in the order they were made available', head);
      this.orderFirst = (this.orderFirst + 1) & this.mask;
    }
    this.held[head] = NOT_HELD;
    this.inFlightCount--;
    const slot = this.usedRingIndex32 + (this.nextUsed & this.mask) * 2;
    this.usedU32[slot] = head;
    this.usedU32[slot + 1] = length;
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // §2.7.8.2: the element is written before used idx moves (Atomics: release).
    Atomics.store(this.usedU16, this.usedIdxIndex, this.nextUsed);
  }

  /**
   * Returns several chains with one used idx update; the batch is validated as a whole before
   * anything is written.
   *
   * With VIRTIO_F_IN_ORDER (§2.7.9) the elements must be the oldest chains in pop order, and the
   * device writes one used entry per run: "the skipped buffers ... are assumed to have been used
   * (read or written) by the device completely", so a run ends at the last element and at every
   * element whose length is not its whole writable length. Each run's entry sits at the offset of
   * the run's first buffer and names its last head; used idx moves by the batch size.
   */
  pushUsedBatch(elements: readonly UsedElement[]): void {
    if (this.isBroken) throw this.brokenError();
    const n = elements.length;
    if (n === 0) return;
    for (let k = 0; k < n; k++) {
      const e = elements[k]!;
      this.checkUsed(e.head, e.length);
      if (this.inOrder && this.order[(this.orderFirst + k) & this.mask] !== e.head) {
        throw this.usedError('VIRTIO_F_IN_ORDER: buffers must be used in the order they were made available', e.head);
      }
    }
    // Duplicates inside the batch: mark each head as taken by the batch, keeping its writable
    // length recoverable (-2 - length), and undo on failure.
    const held = this.held;
    for (let k = 0; k < n; k++) {
      const head = elements[k]!.head;
      const writable = held[head]!;
      if (writable < 0) {
        for (let u = 0; u < k; u++) held[elements[u]!.head] = -2 - held[elements[u]!.head]!;
        throw this.usedError('head appears twice in the batch', head);
      }
      held[head] = -2 - writable;
    }
    const nextUsed = this.nextUsed;
    const usedU32 = this.usedU32;
    if (this.inOrder) {
      let runStart = nextUsed;
      for (let k = 0; k < n; k++) {
        const e = elements[k]!;
        if (k === n - 1 || e.length !== -2 - held[e.head]!) {
          const slot = this.usedRingIndex32 + (runStart & this.mask) * 2;
          usedU32[slot] = e.head;
          usedU32[slot + 1] = e.length;
          runStart = (nextUsed + k + 1) & 0xffff;
        }
      }
      this.orderFirst = (this.orderFirst + n) & this.mask;
    } else {
      for (let k = 0; k < n; k++) {
        const e = elements[k]!;
        const slot = this.usedRingIndex32 + ((nextUsed + k) & this.mask) * 2;
        usedU32[slot] = e.head;
        usedU32[slot + 1] = e.length;
      }
    }
    for (let k = 0; k < n; k++) held[elements[k]!.head] = NOT_HELD;
    this.inFlightCount -= n;
    this.nextUsed = (nextUsed + n) & 0xffff;
    Atomics.store(this.usedU16, this.usedIdxIndex, this.nextUsed);
  }

  needsNotification(): boolean {
    const newUsed = this.nextUsed;
    const oldUsed = this.signalledUsed;
    this.signalledUsed = newUsed;
    if (newUsed === oldUsed) return false;
    // §2.7.7.2 / §2.7.10: read flags or used_event after writing used idx (Atomics: ordered).
    if (this.eventIdx) return needEvent(Atomics.load(this.availU16, this.usedEventIndex), newUsed, oldUsed);
    return (Atomics.load(this.availU16, this.availFlagsIndex) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  disableNotification(): void {
    this.notificationsEnabled = false;
    // With EVENT_IDX the device just stops moving avail_event (the driver notifies at most once more).
    if (!this.eventIdx) Atomics.store(this.usedU16, this.usedFlagsIndex, VIRTQ_USED_F_NO_NOTIFY);
  }

  enableNotification(): boolean {
    this.notificationsEnabled = true;
    if (this.eventIdx) Atomics.store(this.usedU16, this.availEventIndex, this.nextAvail);
    else Atomics.store(this.usedU16, this.usedFlagsIndex, 0);
    // §2.7.10: re-check after publishing, or a buffer added meanwhile would sleep forever.
    if (this.isBroken) return false;
    this.availShadow = Atomics.load(this.availU16, this.availIdxIndex);
    return this.availShadow !== this.nextAvail;
  }

  reset(): void {
    this.nextAvail = 0;
    this.availShadow = 0;
    this.nextUsed = 0;
    this.signalledUsed = 0;
    this.notificationsEnabled = true;
    this.isBroken = false;
    this.held.fill(NOT_HELD);
    this.inFlightCount = 0;
    this.orderFirst = 0;
  }

  saveState(): SplitQueueState {
    const inFlight: number[] = [];
    if (this.inOrder) {
      for (let k = 0; k < this.inFlightCount; k++) inFlight.push(this.order[(this.orderFirst + k) & this.mask]!);
    } else {
      for (let head = 0; head < this.size; head++) if (this.held[head] !== NOT_HELD) inFlight.push(head);
    }
    return {
      version: 1,
      layout: 'split',
      ring: { ...this.ring },
      features: { ...this.features },
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      inFlight,
      broken: this.isBroken,
    };
  }

  private checkUsed(head: number, length: number): void {
    if (head >>> 0 !== head || head >= this.size) throw this.usedError(`head ${head} is not in flight`, head);
    const writable = this.held[head]!;
    if (writable === NOT_HELD) throw this.usedError(`head ${head} is not in flight`, head);
    // §2.7.8.1: len is the number of bytes written into the writable part of the buffer.
    if (length >>> 0 !== length || length > writable) {
      throw new RingError('INVALID_USED', `used length ${length} exceeds the chain's writable length`, { queue: this.queueIndex, head, length });
    }
  }

  // Error builders return the error and callers `throw` it: the compiler then knows that the
  // hot path does not continue past a failed check.
  private usedError(message: string, head: number): RingError {
    return new RingError('INVALID_USED', message, { queue: this.queueIndex, head });
  }

  /** Marks the queue broken and returns the fatal error to throw. */
  private breakQueue(code: RingErrorCode, message: string, context: { head?: number; descriptor?: number }): RingError {
    this.isBroken = true;
    return new RingError(code, message, { queue: this.queueIndex, ...context }, { fatal: true });
  }

  private brokenError(): RingError {
    return new RingError('QUEUE_BROKEN', 'queue is broken after a fatal ring error; reset it', { queue: this.queueIndex }, { fatal: true });
  }
}
