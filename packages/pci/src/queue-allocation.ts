import type { GuestMemory } from '@virtio-ts/memory';
import type { DriverQueue } from '@virtio-ts/ring';
import {
  DeviceError,
  queueAreaSizes,
  queueFeaturesOf,
  queueLayoutOf,
  queueSizeProblem,
  type Features,
  type GuestAllocator,
  type QueueFactory,
  type QueueRing,
  type QueueSetupOptions,
} from '@virtio-ts/device';

/** Default entries per indirect table: long enough for typical requests, small in memory. */
const DEFAULT_INDIRECT_DESCRIPTORS = 8;

/** A driver queue with its guest memory, before it is programmed into the device. */
export interface AllocatedQueue<T> {
  readonly queue: DriverQueue<T>;
  readonly ring: QueueRing;
  /** Allocations to free at reset. */
  readonly allocations: readonly number[];
  /** Addresses of the descriptor, driver and device areas. */
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
}

/**
 * Chooses layout and size (§2.7 / §2.8), allocates the three ring areas and, when indirect
 * descriptors are negotiated, the indirect table area, and builds the driver side of the queue
 * with the negotiated ring features. Shared by the pci and mmio driver transports.
 */
export function allocateDriverQueue<T>(
  index: number,
  max: number,
  features: Features,
  options: QueueSetupOptions,
  memory: GuestMemory,
  allocator: GuestAllocator,
  factory: QueueFactory,
): AllocatedQueue<T> {
  const negotiated = queueLayoutOf(features);
  const layout = options.layout ?? negotiated;
  if (layout !== negotiated) throw new DeviceError('INVALID_ARGUMENT', `a ${layout} ring does not match the negotiated features (VIRTIO_F_RING_PACKED)`, { queue: index });
  const size = options.size ?? max;
  const problem = queueSizeProblem(layout, size, max);
  if (problem !== undefined) throw new DeviceError('INVALID_ARGUMENT', problem, { queue: index, size });
  const queueFeatures = queueFeaturesOf(features);
  const sizes = queueAreaSizes(layout, size);
  const allocations: number[] = [];
  try {
    const desc = allocator.allocate(sizes.desc, 16);
    allocations.push(desc);
    const driver = allocator.allocate(sizes.driver, 4);
    allocations.push(driver);
    const device = allocator.allocate(sizes.device, 4);
    allocations.push(device);
    let indirectArea: { address: number; maxDescriptors: number } | undefined;
    if (queueFeatures.indirect && size >= 2) {
      const maxDescriptors = Math.min(options.indirect?.maxDescriptors ?? DEFAULT_INDIRECT_DESCRIPTORS, size);
      if (!Number.isInteger(maxDescriptors) || maxDescriptors < 2) throw new DeviceError('INVALID_ARGUMENT', 'indirect tables need at least 2 entries', { queue: index });
      const address = allocator.allocate(size * maxDescriptors * 16, 16);
      allocations.push(address);
      indirectArea = { address, maxDescriptors };
    }
    const ring: QueueRing =
      layout === 'split'
        ? { layout, ring: { size, descTable: desc, availRing: driver, usedRing: device } }
        : { layout, ring: { size, descRing: desc, driverEvent: driver, deviceEvent: device } };
    const queue = factory.createDriverQueue<T>(ring, {
      memory,
      features: queueFeatures,
      index,
      indirectArea,
      indirectThreshold: options.indirect?.threshold,
    });
    return { queue, ring, allocations, desc, driver, device };
  } catch (error) {
    for (const a of allocations) allocator.free(a);
    throw error;
  }
}
