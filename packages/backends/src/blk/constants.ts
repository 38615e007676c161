// VIRTIO 1.3 §5.2 (Block Device); names as in linux/include/uapi/linux/virtio_blk.h.
// Spec constants live in @virtio-ts/device; the device re-exports the ones it uses.
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
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
} from '@virtio-ts/device';

/** §5.2.1 */
export const VIRTIO_ID_BLOCK = 2;

/** §5.2.6: `unmap` bit of `virtio_blk_discard_write_zeroes.flags`; the other 31 bits are reserved. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** §5.2.6: the protocol's sector is always 512 bytes, whatever `blk_size` says. */
export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;
/** §5.2.6: `struct virtio_blk_req` header: le32 type, le32 reserved, le64 sector. */
export const REQUEST_HEADER_SIZE = 16;
/** §5.2.6: `struct virtio_blk_discard_write_zeroes`: le64 sector, le32 num_sectors, le32 flags. */
export const DISCARD_SEGMENT_SIZE = 16;
/** §5.2.6: the device ID string is up to 20 bytes, NUL-padded, without NUL when exactly 20. */
export const VIRTIO_BLK_ID_BYTES = 20;

/** §5.2.4: byte offsets in `struct virtio_blk_config`. */
export const BLK_CONFIG = {
  capacity: 0,
  sizeMax: 8,
  segMax: 12,
  geometryCylinders: 16,
  geometryHeads: 18,
  geometrySectors: 19,
  blkSize: 20,
  topologyPhysicalBlockExp: 24,
  topologyAlignmentOffset: 25,
  topologyMinIoSize: 26,
  topologyOptIoSize: 28,
  writeback: 32,
  unused0: 33,
  numQueues: 34,
  maxDiscardSectors: 36,
  maxDiscardSeg: 40,
  discardSectorAlignment: 44,
  maxWriteZeroesSectors: 48,
  maxWriteZeroesSeg: 52,
  writeZeroesMayUnmap: 56,
  unused1: 57,
  /** The config space we expose ends after `unused1` (secure erase and zoned are not offered). */
  size: 60,
} as const;
