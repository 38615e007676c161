import * as ring from '@virtio-ts/ring';
import type { DeviceQueue, DriverQueue, PackedQueueLayout, QueueOptions, SplitQueueLayout } from '@virtio-ts/ring';
import { DeviceError } from './errors.js';

/** The guest-physical placement of one virtqueue, split (§2.7) or packed (§2.8). */
export type QueueRing =
  | { readonly layout: 'split'; readonly ring: SplitQueueLayout }
  | { readonly layout: 'packed'; readonly ring: PackedQueueLayout };

/**
 * Builds the ring objects of `@virtio-ts/ring` for a transport. Injectable so that a VMM or a test
 * can wrap queues (metrics, tracing) without touching the transports.
 */
export interface QueueFactory {
  createDeviceQueue(ring: QueueRing, options: QueueOptions): DeviceQueue;
  createDriverQueue<T>(ring: QueueRing, options: QueueOptions): DriverQueue<T>;
}

type Ctor<R> = new (layout: SplitQueueLayout | PackedQueueLayout, options: QueueOptions) => R;

function ringClass<R>(name: string): Ctor<R> {
  const value = (ring as Record<string, unknown>)[name];
  if (typeof value !== 'function') {
    throw new DeviceError('UNSUPPORTED', `@virtio-ts/ring does not export ${name}`);
  }
  return value as Ctor<R>;
}

/**
 * The default {@link QueueFactory}: `SplitDeviceQueue` / `SplitDriverQueue` /
 * `PackedDeviceQueue` / `PackedDriverQueue` of `@virtio-ts/ring`.
 */
export const defaultQueueFactory: QueueFactory = Object.freeze({
  createDeviceQueue(queueRing: QueueRing, options: QueueOptions): DeviceQueue {
    const Class = ringClass<DeviceQueue>(queueRing.layout === 'split' ? 'SplitDeviceQueue' : 'PackedDeviceQueue');
    return new Class(queueRing.ring, options);
  },
  createDriverQueue<T>(queueRing: QueueRing, options: QueueOptions): DriverQueue<T> {
    const Class = ringClass<DriverQueue<T>>(queueRing.layout === 'split' ? 'SplitDriverQueue' : 'PackedDriverQueue');
    return new Class(queueRing.ring, options);
  },
});
