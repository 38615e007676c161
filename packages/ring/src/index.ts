export * from './constants.js';
export { RingError, type RingErrorCode, type RingErrorContext } from './errors.js';
export * from './types.js';
// Split virtqueue (VIRTIO 1.3 §2.7)
export { SplitDeviceQueue } from './split/device-queue.js';
export { SplitDriverQueue, indirectAreaSize, type IndirectArea, type SplitDriverQueueOptions } from './split/driver-queue.js';
export { SplitDescriptorChain, MAX_CHAIN_LENGTH } from './split/descriptor-chain.js';
export {
  splitQueueLayout,
  splitQueueFootprint,
  validateSplitLayout,
  isValidSplitQueueSize,
  descTableSize,
  availRingSize,
  usedRingSize,
  usedEventAddress,
  availEventAddress,
  type ResolvedSplitLayout,
} from './split/layout.js';
export { needEvent } from './split/ring-math.js';
// Packed virtqueue (VIRTIO 1.3 §2.8)
export { PackedDeviceQueue } from './packed/device-queue.js';
export { PackedDriverQueue, type PackedDriverQueueOptions } from './packed/driver-queue.js';
export { MAX_INDIRECT_DESCRIPTORS } from './packed/descriptor-chain.js';
export { packedQueueLayout, packedQueueFootprint, packedDescRingSize, validatePackedLayout, isValidPackedQueueSize, type ResolvedPackedLayout } from './packed/layout.js';
