// Test helpers of @virtio-ts/ring, exported as `@virtio-ts/ring/testing`.
// Split ring helpers:
export { MockSplitQueue, createSplitRing, type MockSegment, type MockSplitQueueOptions, type RawDescriptor, type SplitRing, type SplitRingOptions } from './mock-split-queue.js';
export { DOORBELL, INTERRUPT, runSplitDeviceThread, runSplitDriverThread, type SplitThreadConfig, type SplitThreadResult } from './split-ring-threads.js';
// Packed ring helpers: (added by the packed ring's author)
export * from './packed-helpers.js';
