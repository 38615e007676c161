import { GuestMemory } from '@virtio-ts/memory';
import { PackedDeviceQueue } from '../packed/device-queue.js';
import { PackedDriverQueue } from '../packed/driver-queue.js';
import { packedQueueFootprint, packedQueueLayout } from '../packed/layout.js';
import type { PackedQueueLayout, QueueFeatures } from '../types.js';

/** Options of {@link createPackedQueuePair}. */
export interface PackedQueuePairOptions {
  /** Queue size, 1..32768 (default 16). */
  readonly size?: number;
  readonly features?: Partial<QueueFeatures>;
  /** Entries per indirect table (default 8); the area is reserved only with `features.indirect`. */
  readonly maxIndirect?: number;
  /** Bytes of data space after the rings (default 1 MiB). */
  readonly dataBytes?: number;
  /** Bring your own guest memory (default: one region at 0, sized for the rings and data). */
  readonly memory?: GuestMemory;
}

/** A driver and a device over the same packed ring in one guest memory. */
export interface PackedQueuePair<T> {
  readonly memory: GuestMemory;
  readonly layout: PackedQueueLayout;
  readonly driver: PackedDriverQueue<T>;
  readonly device: PackedDeviceQueue;
  /** First guest address of the free data space. */
  readonly dataAddress: number;
  readonly dataBytes: number;
}

/**
 * Builds a packed ring at address 0x1000 with its indirect area (when negotiated) and a data
 * space after it, and both sides over it: the quickest way to run buffers through the public API.
 *
 * @example
 * ```ts
 * const { driver, device, dataAddress } = createPackedQueuePair<string>({ size: 4 });
 * driver.add([], [{ address: dataAddress, length: 64 }], 'a');
 * device.pushUsed(device.pop()!.head, 64);
 * driver.getUsed(); // { token: 'a', length: 64 }
 * ```
 */
export function createPackedQueuePair<T>(options: PackedQueuePairOptions = {}): PackedQueuePair<T> {
  const size = options.size ?? 16;
  const features = { eventIdx: false, indirect: false, inOrder: false, ...options.features };
  const maxIndirect = options.maxIndirect ?? 8;
  const dataBytes = options.dataBytes ?? 1 << 20;
  const layout = packedQueueLayout(size, 0x1000);
  const indirectAddress = align(layout.descRing + packedQueueFootprint(size), 4096);
  const indirectBytes = features.indirect ? size * maxIndirect * 16 : 0;
  const dataAddress = align(indirectAddress + indirectBytes, 4096);
  const memory = options.memory ?? GuestMemory.create([{ guestAddress: 0, size: dataAddress + dataBytes }]);
  const driver = new PackedDriverQueue<T>(layout, {
    memory,
    features,
    ...(features.indirect ? { indirectArea: { address: indirectAddress, maxDescriptors: maxIndirect } } : {}),
  });
  const device = new PackedDeviceQueue(layout, { memory, features });
  return { memory, layout, driver, device, dataAddress, dataBytes };
}

function align(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
