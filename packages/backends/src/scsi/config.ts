import { SCSI_CONFIG } from './constants.js';

/** §5.6.4 `struct virtio_scsi_config`, field by field (camelCase of the spec's names). */
export interface ScsiConfig {
  readonly numQueues: number;
  readonly segMax: number;
  readonly maxSectors: number;
  readonly cmdPerLun: number;
  readonly eventInfoSize: number;
  readonly senseSize: number;
  readonly cdbSize: number;
  readonly maxChannel: number;
  readonly maxTarget: number;
  readonly maxLun: number;
}

/** Encodes the configuration space (little-endian, §5.6.4). */
export function encodeScsiConfig(c: ScsiConfig): Uint8Array {
  const bytes = new Uint8Array(SCSI_CONFIG.size);
  const v = new DataView(bytes.buffer);
  v.setUint32(SCSI_CONFIG.numQueues, c.numQueues, true);
  v.setUint32(SCSI_CONFIG.segMax, c.segMax, true);
  v.setUint32(SCSI_CONFIG.maxSectors, c.maxSectors, true);
  v.setUint32(SCSI_CONFIG.cmdPerLun, c.cmdPerLun, true);
  v.setUint32(SCSI_CONFIG.eventInfoSize, c.eventInfoSize, true);
  v.setUint32(SCSI_CONFIG.senseSize, c.senseSize, true);
  v.setUint32(SCSI_CONFIG.cdbSize, c.cdbSize, true);
  v.setUint16(SCSI_CONFIG.maxChannel, c.maxChannel, true);
  v.setUint16(SCSI_CONFIG.maxTarget, c.maxTarget, true);
  v.setUint32(SCSI_CONFIG.maxLun, c.maxLun, true);
  return bytes;
}

/** Decodes a configuration space (the driver side reads it this way). */
export function decodeScsiConfig(bytes: Uint8Array): ScsiConfig {
  const v = new DataView(bytes.buffer, bytes.byteOffset, SCSI_CONFIG.size);
  return {
    numQueues: v.getUint32(SCSI_CONFIG.numQueues, true),
    segMax: v.getUint32(SCSI_CONFIG.segMax, true),
    maxSectors: v.getUint32(SCSI_CONFIG.maxSectors, true),
    cmdPerLun: v.getUint32(SCSI_CONFIG.cmdPerLun, true),
    eventInfoSize: v.getUint32(SCSI_CONFIG.eventInfoSize, true),
    senseSize: v.getUint32(SCSI_CONFIG.senseSize, true),
    cdbSize: v.getUint32(SCSI_CONFIG.cdbSize, true),
    maxChannel: v.getUint16(SCSI_CONFIG.maxChannel, true),
    maxTarget: v.getUint16(SCSI_CONFIG.maxTarget, true),
    maxLun: v.getUint32(SCSI_CONFIG.maxLun, true),
  };
}
