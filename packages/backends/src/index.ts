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
export { RngDevice, type RngDeviceOptions } from './rng/rng-device.js';
export { RngMetrics } from './rng/metrics.js';
export type { RngFault } from './rng/errors.js';
export type { RngDeviceState } from './rng/persist.js';
export { webCryptoEntropy, type EntropySource } from './rng/entropy.js';
export { TokenBucket, systemClock, type Clock, type RateLimit } from './rng/rate-limiter.js';
export { ConsoleDevice, type ConsoleDeviceOptions, type ConsolePortOptions } from './console/console-device.js';
export { MemoryConsoleBackend, type ConsoleBackend } from './console/console-backend.js';
export { ConsoleMetrics } from './console/metrics.js';
export { CONSOLE_FAULTS, type ConsoleFault } from './console/errors.js';
export type { ConsoleDeviceState, ConsolePortState } from './console/persist.js';
export { decodeControlMessage, encodeControlMessage, encodeResize, type ControlMessage } from './console/control-message.js';
export * from './console/constants.js';
export { ScsiDevice, type ScsiDeviceOptions, type ScsiLunOptions } from './scsi/scsi-device.js';
export {
  ScsiLogicalUnit,
  type ScsiLogicalUnitOptions,
  type ScsiCommandResult,
  type ScsiDataBuffers,
  type ScsiTargetView,
} from './scsi/logical-unit.js';
export { ScsiMetrics } from './scsi/metrics.js';
export { SCSI_FAULTS, type ScsiFault } from './scsi/errors.js';
export { decodeScsiConfig, encodeScsiConfig, type ScsiConfig } from './scsi/config.js';
export { decodeCdb, encodeCdb, cdbLength, type Cdb, type CdbDecodeResult, type CdbProblem } from './scsi/cdb.js';
export { SENSE, decodeSense, encodeFixedSense, type SenseCode } from './scsi/sense.js';
export { decodeLunAddress, encodeLunAddress, type LunAddress } from './scsi/lun-address.js';
export * from './scsi/constants.js';
export type { ScsiDeviceState, ScsiUnitState } from './scsi/persist.js';
export { L2Switch, type L2SwitchOptions, type L2SwitchStats } from './net/l2-switch.js';
export { NetDevice, DEFAULT_MAC, NET_CONFIG_SIZE, type NetDeviceOptions } from './net/net-device.js';
export { NetMetrics, type NetQueueMetrics } from './net/metrics.js';
export { NET_FAULTS, type NetFault } from './net/errors.js';
export type { NetDeviceState } from './net/persist.js';
export { MAC_TABLE_ENTRIES, type RxFilterState, type RxModes } from './net/rx-filter.js';
export { formatMac, parseMac } from '@virtio-ts/device';
export { internetChecksum, completeChecksum } from '@virtio-ts/device';
export {
  NO_NET_OFFLOADS,
  type NetBackend,
  type NetBackendStats,
  type NetOffloads,
  type NetPort,
  type NetReceiver,
} from './net/net-backend.js';
