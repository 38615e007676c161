// Packed ring test helpers, re-exported by ./index.ts in one line.
export { PackedRingBuilder, packedAvailFlags, type RawPackedDescriptor } from './packed-ring-builder.js';
export { createPackedQueuePair, type PackedQueuePair, type PackedQueuePairOptions } from './packed-queue-pair.js';
export { runPackedDeviceThread, runPackedDriverThread, type PackedThreadConfig, type PackedThreadResult } from './packed-ring-threads.js';
