export { DriverError, type DriverErrorCode, type DriverErrorContext } from './errors.js';
export { VirtqueueClient } from './virtqueue-client.js';
export { DmaBuffer } from './dma-buffer.js';
export { BlkDriver, type BlkDriverOptions, type BlkLimits, type SectorRange } from './blk/blk-driver.js';
export { RngDriver, type RngDriverOptions } from './rng/rng-driver.js';
export { ConsoleDriver, type ConsoleDriverOptions, type ConsolePortInfo } from './console/console-driver.js';
export { ScsiDriver, ScsiDisk, type ScsiDriverOptions, type ScsiAddress, type ScsiResponse, type ScsiEvent } from './scsi/scsi-driver.js';
