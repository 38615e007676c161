import { PackedDeviceQueue, PackedDriverQueue, SplitDeviceQueue, SplitDriverQueue } from '@virtio-ts/ring';
import type { DeviceQueue, DriverQueue, PackedQueueLayout, QueueOptions, QueueState, SplitQueueLayout } from '@virtio-ts/ring';

/** The guest-physical placement of one virtqueue, split (§2.7) or packed (§2.8). */
export type QueueRing =
  | { readonly layout: 'split'; readonly ring: SplitQueueLayout }
  | { readonly layout: 'packed'; readonly ring: PackedQueueLayout };

/** Options of a driver-side queue: the ring options plus where indirect tables go. */
export interface DriverQueueOptions extends QueueOptions {
  /** Guest memory for indirect tables: one table of `maxDescriptors` entries per descriptor / buffer id. */
  readonly indirectArea?: { readonly address: number; readonly maxDescriptors: number };
  /** Chains of at least this many segments go indirect (when negotiated and an area is given). */
  readonly indirectThreshold?: number;
}

/**
 * Builds the ring objects of `@virtio-ts/ring` for a transport. Injectable so that a VMM or a test
 * can wrap queues (metrics, tracing) without touching the transports.
 */
export interface QueueFactory {
  createDeviceQueue(ring: QueueRing, options: QueueOptions): DeviceQueue;
  createDriverQueue<T>(ring: QueueRing, options: DriverQueueOptions): DriverQueue<T>;
  /** Optional: rebuilds a device queue from `DeviceQueue.saveState()` (validating it). Needed by `DeviceCore.restoreState`. */
  restoreDeviceQueue?(state: QueueState, options: QueueOptions): DeviceQueue;
}

/**
 * The default {@link QueueFactory}: `SplitDeviceQueue` / `SplitDriverQueue` /
 * `PackedDeviceQueue` / `PackedDriverQueue` of `@virtio-ts/ring`.
 */
export const defaultQueueFactory: QueueFactory = Object.freeze({
  createDeviceQueue(queueRing: QueueRing, options: QueueOptions): DeviceQueue {
    return queueRing.layout === 'split' ? new SplitDeviceQueue(queueRing.ring, options) : new PackedDeviceQueue(queueRing.ring, options);
  },
  createDriverQueue<T>(queueRing: QueueRing, options: DriverQueueOptions): DriverQueue<T> {
    return queueRing.layout === 'split'
      ? new SplitDriverQueue<T>(queueRing.ring, options)
      : new PackedDriverQueue<T>(queueRing.ring, options);
  },
  restoreDeviceQueue(state: QueueState, options: QueueOptions): DeviceQueue {
    return state.layout === 'split' ? SplitDeviceQueue.restore(state, options) : PackedDeviceQueue.restore(state, options);
  },
});
