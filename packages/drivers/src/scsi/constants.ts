/** virtio-scsi (VIRTIO 1.3 §5.6) numbers the driver model uses. */
// Spec constants live in @virtio-ts/device; re-exported here for this package's users.
export {
  VIRTIO_SCSI_F_INOUT,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_SENSE_SIZE,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_S_OVERRUN,
  VIRTIO_SCSI_S_ABORTED,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_TMF_ABORT_TASK,
  VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
  VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_EVT_RESET_REMOVED,
} from '@virtio-ts/device';

/** §5.6.4 config offsets. */
export const SCSI_CONFIG_OFFSETS = {
  numQueues: 0,
  segMax: 4,
  maxSectors: 8,
  cmdPerLun: 12,
  eventInfoSize: 16,
  senseSize: 20,
  cdbSize: 24,
  maxChannel: 28,
  maxTarget: 30,
  maxLun: 32,
  size: 36,
} as const;

export const SAM_STAT_GOOD = 0x00;
export const SAM_STAT_CHECK_CONDITION = 0x02;
export const SENSE_UNIT_ATTENTION = 0x6;
