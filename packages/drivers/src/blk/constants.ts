// VIRTIO 1.3 §5.2 (Block Device), driver side; names as in linux/include/uapi/linux/virtio_blk.h.
// Spec constants live in @virtio-ts/device; the driver re-exports the ones it uses.
export {
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_GEOMETRY,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
} from '@virtio-ts/device';

export const SECTOR_SIZE = 512;
export const VIRTIO_BLK_ID_BYTES = 20;

/** §5.2.4 offsets this driver reads. */
export const BLK_CONFIG_OFFSETS = {
  capacity: 0,
  sizeMax: 8,
  segMax: 12,
  blkSize: 20,
  writeback: 32,
  numQueues: 34,
  maxDiscardSectors: 36,
  maxDiscardSeg: 40,
  discardSectorAlignment: 44,
  maxWriteZeroesSectors: 48,
  maxWriteZeroesSeg: 52,
  writeZeroesMayUnmap: 56,
  size: 60,
} as const;
