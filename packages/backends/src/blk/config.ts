import { BLK_CONFIG } from './constants.js';

/** §5.2.4 `struct virtio_blk_config`, field by field (camelCase of the spec's names). */
export interface BlkConfig {
  /** Disk size in 512-byte sectors. */
  readonly capacity: number;
  readonly sizeMax: number;
  readonly segMax: number;
  readonly geometry: { readonly cylinders: number; readonly heads: number; readonly sectors: number };
  readonly blkSize: number;
  readonly topology: {
    readonly physicalBlockExp: number;
    readonly alignmentOffset: number;
    readonly minIoSize: number;
    readonly optIoSize: number;
  };
  /** 0: writethrough, 1: writeback. */
  readonly writeback: number;
  readonly numQueues: number;
  readonly maxDiscardSectors: number;
  readonly maxDiscardSeg: number;
  readonly discardSectorAlignment: number;
  readonly maxWriteZeroesSectors: number;
  readonly maxWriteZeroesSeg: number;
  readonly writeZeroesMayUnmap: number;
}

/** Encodes the configuration space (little-endian, §5.2.4); `unused0`/`unused1` are 0 (§5.2.5.2: MUST). */
export function encodeBlkConfig(config: BlkConfig): Uint8Array {
  const bytes = new Uint8Array(BLK_CONFIG.size);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(BLK_CONFIG.capacity, BigInt(config.capacity), true);
  v.setUint32(BLK_CONFIG.sizeMax, config.sizeMax, true);
  v.setUint32(BLK_CONFIG.segMax, config.segMax, true);
  v.setUint16(BLK_CONFIG.geometryCylinders, config.geometry.cylinders, true);
  v.setUint8(BLK_CONFIG.geometryHeads, config.geometry.heads);
  v.setUint8(BLK_CONFIG.geometrySectors, config.geometry.sectors);
  v.setUint32(BLK_CONFIG.blkSize, config.blkSize, true);
  v.setUint8(BLK_CONFIG.topologyPhysicalBlockExp, config.topology.physicalBlockExp);
  v.setUint8(BLK_CONFIG.topologyAlignmentOffset, config.topology.alignmentOffset);
  v.setUint16(BLK_CONFIG.topologyMinIoSize, config.topology.minIoSize, true);
  v.setUint32(BLK_CONFIG.topologyOptIoSize, config.topology.optIoSize, true);
  v.setUint8(BLK_CONFIG.writeback, config.writeback);
  v.setUint16(BLK_CONFIG.numQueues, config.numQueues, true);
  v.setUint32(BLK_CONFIG.maxDiscardSectors, config.maxDiscardSectors, true);
  v.setUint32(BLK_CONFIG.maxDiscardSeg, config.maxDiscardSeg, true);
  v.setUint32(BLK_CONFIG.discardSectorAlignment, config.discardSectorAlignment, true);
  v.setUint32(BLK_CONFIG.maxWriteZeroesSectors, config.maxWriteZeroesSectors, true);
  v.setUint32(BLK_CONFIG.maxWriteZeroesSeg, config.maxWriteZeroesSeg, true);
  v.setUint8(BLK_CONFIG.writeZeroesMayUnmap, config.writeZeroesMayUnmap);
  return bytes;
}

/** Decodes a configuration space (the driver side reads it this way). */
export function decodeBlkConfig(bytes: Uint8Array): BlkConfig {
  const v = new DataView(bytes.buffer, bytes.byteOffset, BLK_CONFIG.size);
  return {
    capacity: Number(v.getBigUint64(BLK_CONFIG.capacity, true)),
    sizeMax: v.getUint32(BLK_CONFIG.sizeMax, true),
    segMax: v.getUint32(BLK_CONFIG.segMax, true),
    geometry: {
      cylinders: v.getUint16(BLK_CONFIG.geometryCylinders, true),
      heads: v.getUint8(BLK_CONFIG.geometryHeads),
      sectors: v.getUint8(BLK_CONFIG.geometrySectors),
    },
    blkSize: v.getUint32(BLK_CONFIG.blkSize, true),
    topology: {
      physicalBlockExp: v.getUint8(BLK_CONFIG.topologyPhysicalBlockExp),
      alignmentOffset: v.getUint8(BLK_CONFIG.topologyAlignmentOffset),
      minIoSize: v.getUint16(BLK_CONFIG.topologyMinIoSize, true),
      optIoSize: v.getUint32(BLK_CONFIG.topologyOptIoSize, true),
    },
    writeback: v.getUint8(BLK_CONFIG.writeback),
    numQueues: v.getUint16(BLK_CONFIG.numQueues, true),
    maxDiscardSectors: v.getUint32(BLK_CONFIG.maxDiscardSectors, true),
    maxDiscardSeg: v.getUint32(BLK_CONFIG.maxDiscardSeg, true),
    discardSectorAlignment: v.getUint32(BLK_CONFIG.discardSectorAlignment, true),
    maxWriteZeroesSectors: v.getUint32(BLK_CONFIG.maxWriteZeroesSectors, true),
    maxWriteZeroesSeg: v.getUint32(BLK_CONFIG.maxWriteZeroesSeg, true),
    writeZeroesMayUnmap: v.getUint8(BLK_CONFIG.writeZeroesMayUnmap),
  };
}
