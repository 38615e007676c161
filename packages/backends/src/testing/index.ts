export { ChainBuilder } from './chain-builder.js';
export { MemoryDisk, type HeldOperation, type MemoryDiskOptions } from './memory-disk.js';
export { ScriptedQueue } from './scripted-queue.js';
export { allOffered, harness, settle, without, type Harness } from './harness.js';
export { equalBytes } from './bytes.js';
export { FakeClock } from './fake-clock.js';
export { RecordingNetBackend, RecordingNetPort, type RecordingNetBackendOptions, type SentFrame } from '../net/recording-net-backend.js';
