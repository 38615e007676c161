export * from './constants.js';
export { DeviceError, type DeviceErrorCode, type DeviceErrorContext } from './errors.js';
export {
  featureBit,
  featureBits,
  featureWord,
  hasFeature,
  queueFeaturesOf,
  queueLayoutOf,
  withFeatureWord,
  type Features,
} from './features.js';
export type { ActivationContext, Interrupt, Notifier, VirtioDevice } from './virtio-device.js';
export type { QueueSetupOptions, VirtioTransport } from './virtio-transport.js';
export { defaultQueueFactory, type DriverQueueOptions, type QueueFactory, type QueueRing } from './queue-factory.js';
export { queueAreaProblem, queueAreas, queueAreaSizes, queueSizeProblem, type QueueArea } from './queue-area.js';
export { GuestMemoryAllocator, type GuestAllocator } from './guest-allocator.js';
export { negotiateFeatures, setDriverOk } from './driver-init.js';
export { DeviceStatusMachine, type FeaturePolicy, type StatusWriteResult } from './status-machine.js';
export { DeviceCore, MAX_QUEUES, type DeviceCoreOptions, type DeviceCoreState, type QueueConfig, type QueueConfigState } from './device-core.js';
export * from './net-header.js';
export { completeChecksum, internetChecksum, onesComplementSum, pseudoHeaderSum } from './net-checksum.js';
export { formatMac, isBroadcast, isGroupAddress, MAC_BYTES, parseMac, sameMac } from './mac-address.js';
