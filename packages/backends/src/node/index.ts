/// <reference types="node" />
export { TapNetBackend, type TapNetBackendOptions } from './tap-backend.js';
export { StreamNetBackend, type StreamAddress, type StreamNetBackendOptions, type StreamNetStats } from './stream-backend.js';
export { StreamFrameDecoder, encodeStreamFrame, STREAM_LENGTH_SIZE, STREAM_MAX_FRAME } from './stream-framing.js';
export { ReadinessWaiter, type Readiness } from './readiness-waiter.js';
