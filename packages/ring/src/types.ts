import type { GuestMemory } from '@virtio-ts/memory';

/** One guest buffer: a guest-physical address and a length in bytes. */
export interface Segment {
  readonly address: number;
  readonly length: number;
}

/**
 * A validated chain popped by the device side: the readable (device-read-only) segments, then
 * the writable (device-write-only) ones, in order. Indirect tables are already flattened.
 */
export interface DescriptorChain {
  /** Split: index of the head descriptor. Packed: the buffer id. Give it back to `pushUsed`. */
  readonly head: number;
  readonly readable: readonly Segment[];
  readonly writable: readonly Segment[];
  /** Sum of the readable lengths (< 2^32). */
  readonly readableLength: number;
  /** Sum of the writable lengths (< 2^32). */
  readonly writableLength: number;
  /** Ring slots the chain used (packed: how far a used element skips; split: descriptors in the table). */
  readonly descriptorCount: number;
}

/** Negotiated ring features that change the ring's behaviour (VIRTIO 1.3 §6). */
export interface QueueFeatures {
  /** VIRTIO_RING_F_EVENT_IDX */
  readonly eventIdx: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC */
  readonly indirect: boolean;
  /** VIRTIO_F_IN_ORDER */
  readonly inOrder: boolean;
}

export const NO_FEATURES: QueueFeatures = Object.freeze({ eventIdx: false, indirect: false, inOrder: false });

/** Guest-physical addresses of a split virtqueue's three areas (§2.7). */
export interface SplitQueueLayout {
  readonly size: number;
  /** Descriptor Area: 16-byte aligned. */
  readonly descTable: number;
  /** Driver Area (available ring): 2-byte aligned. */
  readonly availRing: number;
  /** Device Area (used ring): 4-byte aligned. */
  readonly usedRing: number;
}

/** Guest-physical addresses of a packed virtqueue's three areas (§2.8). */
export interface PackedQueueLayout {
  readonly size: number;
  /** Descriptor ring: 16-byte aligned. */
  readonly descRing: number;
  /** Driver Event Suppression structure: 4-byte aligned. */
  readonly driverEvent: number;
  /** Device Event Suppression structure: 4-byte aligned. */
  readonly deviceEvent: number;
}

/** One completion the device side returns: the head (or buffer id) and the bytes it wrote. */
export interface UsedElement {
  readonly head: number;
  readonly length: number;
}

/**
 * The device side of one virtqueue, split or packed. Drivers, backends and vhost-user share
 * this one shape.
 */
export interface DeviceQueue {
  readonly layout: 'split' | 'packed';
  readonly size: number;
  readonly features: QueueFeatures;
  /** True after a fatal ring error; `pop()` then throws QUEUE_BROKEN until `reset()`. */
  readonly broken: boolean;
  /** Chains popped and not yet returned with `pushUsed` (what a device drains before a reset). */
  readonly inFlight: number;
  /**
   * The next available chain, validated, or null when the ring is empty. Throws {@link RingError}
   * for an invalid chain: non-fatal errors consume that chain only (the device still owns its
   * head and should complete it with `pushUsed(head, 0)`, the head is in `error.context.head`),
   * fatal ones break the queue.
   */
  pop(): DescriptorChain | null;
  /** True when the driver has made a chain available that `pop()` has not returned yet. */
  hasAvailable(): boolean;
  /** Returns a chain to the driver with `length` bytes written into its writable segments. */
  pushUsed(head: number, length: number): void;
  /** Returns several chains; with VIRTIO_F_IN_ORDER a single used entry may stand for the batch. */
  pushUsedBatch(elements: readonly UsedElement[]): void;
  /**
   * Whether the driver must be interrupted for the completions pushed since the last call
   * (flags or `usedEvent`, §2.7.10 / §2.8.10). Resets the "since" point.
   */
  needsNotification(): boolean;
  /** Ask the driver not to notify (polling). */
  disableNotification(): void;
  /**
   * Ask the driver to notify again. Returns true when chains became available meanwhile: the
   * caller must poll again instead of sleeping (the re-check race of §2.7.10).
   */
  enableNotification(): boolean;
  /** Device reset: forget all state. The queue must be configured again. */
  reset(): void;
  /** A plain, serialisable snapshot of the ring state. */
  saveState(): QueueState;
}

/** What the driver side gets back for each completed buffer. */
export interface UsedBuffer<T> {
  readonly token: T;
  /** Bytes the device reports having written. */
  readonly length: number;
}

/** The driver side of one virtqueue, split or packed. */
export interface DriverQueue<T> {
  readonly layout: 'split' | 'packed';
  readonly size: number;
  readonly features: QueueFeatures;
  /** Descriptors free for `add`. */
  readonly freeCount: number;
  /**
   * Makes a buffer available: readable segments then writable ones, with a caller token returned
   * by `getUsed`. Uses an indirect table when negotiated and the chain is long. Throws QUEUE_FULL.
   */
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): void;
  /** Whether the device must be notified of the buffers added since the last call (Linux's kick_prepare). */
  kickPrepare(): boolean;
  /** The next completed buffer, or null. */
  getUsed(): UsedBuffer<T> | null;
  /** Ask the device not to interrupt. */
  disableCallback(): void;
  /** Ask the device to interrupt again; false when completions are already pending (poll again). */
  enableCallback(): boolean;
  /** Tokens of every buffer added and not yet used, removed from the queue (after a device reset). */
  detachUnused(): T[];
}

/** Serialisable ring state (`saveState` / `restore`). Versioned so that old snapshots still load. */
export type QueueState = SplitQueueState | PackedQueueState;

export interface SplitQueueState {
  readonly version: 1;
  readonly layout: 'split';
  readonly ring: SplitQueueLayout;
  readonly features: QueueFeatures;
  /** The device's shadow of avail idx: the next entry to pop (free-running 16-bit). */
  readonly nextAvail: number;
  /** The device's next used idx (free-running 16-bit). */
  readonly nextUsed: number;
  /** Heads popped and not yet returned. */
  readonly inFlight: readonly number[];
  readonly broken: boolean;
}

export interface PackedQueueState {
  readonly version: 1;
  readonly layout: 'packed';
  readonly ring: PackedQueueLayout;
  readonly features: QueueFeatures;
  /** Next ring position the device reads, and its wrap counter. */
  readonly nextAvail: number;
  readonly availWrapCounter: boolean;
  /** Next ring position the device writes a used element to, and its wrap counter. */
  readonly nextUsed: number;
  readonly usedWrapCounter: boolean;
  /** Buffer ids popped and not yet returned, with the ring slots each took. */
  readonly inFlight: readonly { readonly id: number; readonly descriptorCount: number }[];
  readonly broken: boolean;
}

/** Everything a queue is built from. */
export interface QueueOptions {
  readonly memory: GuestMemory;
  readonly features?: Partial<QueueFeatures>;
  /** Queue number, carried in error contexts. */
  readonly index?: number;
}
