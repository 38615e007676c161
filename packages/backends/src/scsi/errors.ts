/**
 * Guest faults of a virtio-scsi device, counted in {@link ScsiMetrics}`.faults` and never
 * thrown: the request completes with a response code (or with used length 0 when there is
 * nowhere to write one).
 */
export type ScsiFault =
  /** Fewer readable bytes than the request header (lun, id, task attributes, `cdb_size` CDB bytes). */
  | 'HEADER_TOO_SHORT'
  /** Fewer writable bytes than the response (12 + `sense_size`). Used length 0. */
  | 'RESPONSE_TOO_SHORT'
  /** Both data-out and data-in without VIRTIO_SCSI_F_INOUT: VIRTIO_SCSI_S_FAILURE. */
  | 'BIDIRECTIONAL'
  /** A LUN address that is not `1, target, 0x40|lun>>8, lun` or names no target: BAD_TARGET. */
  | 'BAD_TARGET'
  /** A control request of an unknown type, or too short for its type. Used length 0. */
  | 'BAD_CONTROL_REQUEST'
  /** An event queue buffer shorter than `event_info_size`. Used length 0. */
  | 'EVENT_BUFFER_TOO_SHORT'
  /** The BlockDriver failed the command (reported as MEDIUM ERROR). */
  | 'BACKEND_ERROR';

/** Every {@link ScsiFault}, in a stable order. */
export const SCSI_FAULTS: readonly ScsiFault[] = [
  'HEADER_TOO_SHORT',
  'RESPONSE_TOO_SHORT',
  'BIDIRECTIONAL',
  'BAD_TARGET',
  'BAD_CONTROL_REQUEST',
  'EVENT_BUFFER_TOO_SHORT',
  'BACKEND_ERROR',
];
