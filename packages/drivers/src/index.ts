export { DriverError, type DriverErrorCode, type DriverErrorContext } from './errors.js';
export { VirtqueueClient } from './virtqueue-client.js';
export { DmaBuffer } from './dma-buffer.js';
export { BlkDriver, type BlkDriverOptions, type BlkLimits, type SectorRange } from './blk/blk-driver.js';
