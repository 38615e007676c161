/** virtio-scsi (VIRTIO 1.3 §5.6) numbers the driver model uses (the device side has its own copy). */
export const VIRTIO_SCSI_F_INOUT = 0;
export const VIRTIO_SCSI_F_HOTPLUG = 1;
export const VIRTIO_SCSI_F_CHANGE = 2;

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

export const VIRTIO_SCSI_CDB_SIZE = 32;
export const VIRTIO_SCSI_SENSE_SIZE = 96;

export const VIRTIO_SCSI_S_OK = 0;
export const VIRTIO_SCSI_S_OVERRUN = 1;
export const VIRTIO_SCSI_S_ABORTED = 2;
export const VIRTIO_SCSI_S_BAD_TARGET = 3;
export const VIRTIO_SCSI_S_FUNCTION_SUCCEEDED = 10;

export const VIRTIO_SCSI_T_TMF = 0;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK = 0;
export const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET = 5;
export const VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET = 4;

export const VIRTIO_SCSI_T_TRANSPORT_RESET = 1;
export const VIRTIO_SCSI_T_PARAM_CHANGE = 3;
export const VIRTIO_SCSI_T_EVENTS_MISSED = 0x8000_0000;
export const VIRTIO_SCSI_EVT_RESET_RESCAN = 1;
export const VIRTIO_SCSI_EVT_RESET_REMOVED = 2;

export const SAM_STAT_GOOD = 0x00;
export const SAM_STAT_CHECK_CONDITION = 0x02;
export const SENSE_UNIT_ATTENTION = 0x6;
