export * from './constants.js';
export { RingError, type RingErrorCode, type RingErrorContext } from './errors.js';
export * from './types.js';
// Packed virtqueue (VIRTIO 1.3 §2.8)
export { PackedDeviceQueue } from './packed/device-queue.js';
export { PackedDriverQueue, type PackedDriverQueueOptions } from './packed/driver-queue.js';
export { MAX_INDIRECT_DESCRIPTORS } from './packed/descriptor-chain.js';
export { packedQueueLayout, packedQueueFootprint, packedDescRingSize, validatePackedLayout, isValidPackedQueueSize, type ResolvedPackedLayout } from './packed/layout.js';
