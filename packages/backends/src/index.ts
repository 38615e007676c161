export { BackendError, type BackendErrorCode, type BackendErrorContext } from './errors.js';
export { ringFeatures, type RingFeatureOptions } from './common-features.js';
export { BlkDevice, type BlkDeviceOptions } from './blk/blk-device.js';
export { BlkMetrics } from './blk/metrics.js';
export { BLK_FAULTS, type BlkFault } from './blk/errors.js';
export type { BlkDeviceState } from './blk/persist.js';
export { decodeBlkConfig, encodeBlkConfig, type BlkConfig } from './blk/config.js';
export * from './blk/constants.js';
export {
  decodeDiscardSegments,
  decodeRequestHeader,
  encodeDiscardSegments,
  encodeRequestHeader,
  type RawDiscardSegment,
  type RequestHeader,
} from './blk/request.js';
