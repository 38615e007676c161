import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP } from './constants.js';

/**
 * Why a virtio-blk request failed. These are *guest* faults (or backend failures), reported to
 * the guest as a status byte and counted in {@link BlkMetrics}`.faults`; they are never thrown
 * out of the device loop. Each distinct fault has its own code.
 */
export type BlkFault =
  /** The chain has no device-writable byte: there is nowhere to put the status. Used length 0. */
  | 'NO_STATUS_BYTE'
  /** Fewer than 16 device-readable bytes: the header is missing or in a write-only descriptor. */
  | 'HEADER_TOO_SHORT'
  /** A request type this device does not implement (GET_LIFETIME, SECURE_ERASE, zoned, unknown). */
  | 'UNSUPPORTED_TYPE'
  /** FLUSH, DISCARD or WRITE_ZEROES whose feature was not negotiated. */
  | 'FEATURE_NOT_NEGOTIATED'
  /** IN/OUT data not a multiple of 512 bytes; DISCARD/WRITE_ZEROES data not a multiple of 16. */
  | 'BAD_DATA_LENGTH'
  /** Data in the wrong direction: readable data on IN/GET_ID, writable data on OUT/FLUSH/DISCARD. */
  | 'UNEXPECTED_DATA'
  /** A sector range that overflows or ends past `capacity` (§5.2.6.1: MUST NOT). */
  | 'OUT_OF_RANGE'
  /** A range not aligned to the backend's request alignment (`blk_size`). */
  | 'UNALIGNED'
  /** More data than the device's bound (`seg_max * size_max`), so no unbounded allocation. */
  | 'REQUEST_TOO_LARGE'
  /** A write, discard or write-zeroes on a read-only device (§5.2.6.2: MUST be IOERR). */
  | 'READ_ONLY'
  /** DISCARD/WRITE_ZEROES with zero segments or more than `max_discard_seg`/`max_write_zeroes_seg`. */
  | 'BAD_SEGMENT_COUNT'
  /** A DISCARD/WRITE_ZEROES segment longer than `max_discard_sectors`/`max_write_zeroes_sectors`. */
  | 'SEGMENT_TOO_LARGE'
  /** Reserved flag bits set in a DISCARD/WRITE_ZEROES segment (§5.2.6.2: MUST be UNSUPP). */
  | 'RESERVED_FLAGS'
  /** The `unmap` flag on a DISCARD (§5.2.6.2: MUST be UNSUPP). */
  | 'UNMAP_ON_DISCARD'
  /** The BlockDriver rejected or failed the operation. */
  | 'BACKEND_ERROR';

/** Every {@link BlkFault}, in a stable order (the metrics JSON lists them in this order). */
export const BLK_FAULTS: readonly BlkFault[] = [
  'NO_STATUS_BYTE',
  'HEADER_TOO_SHORT',
  'UNSUPPORTED_TYPE',
  'FEATURE_NOT_NEGOTIATED',
  'BAD_DATA_LENGTH',
  'UNEXPECTED_DATA',
  'OUT_OF_RANGE',
  'UNALIGNED',
  'REQUEST_TOO_LARGE',
  'READ_ONLY',
  'BAD_SEGMENT_COUNT',
  'SEGMENT_TOO_LARGE',
  'RESERVED_FLAGS',
  'UNMAP_ON_DISCARD',
  'BACKEND_ERROR',
];

/** The status byte a fault is reported with (§5.2.6: IOERR for device or driver error, UNSUPP for unsupported). */
export function faultStatus(fault: BlkFault): number {
  switch (fault) {
    case 'UNSUPPORTED_TYPE':
    case 'FEATURE_NOT_NEGOTIATED':
    case 'RESERVED_FLAGS':
    case 'UNMAP_ON_DISCARD':
      return VIRTIO_BLK_S_UNSUPP;
    default:
      return VIRTIO_BLK_S_IOERR;
  }
}
