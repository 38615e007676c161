/** virtio-scsi (VIRTIO 1.3 §5.6) and SCSI (SPC-4 / SBC-3) numbers used by the device. */
// Spec constants live in @virtio-ts/device; re-exported here for this package's users.
export {
  VIRTIO_SCSI_F_INOUT,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_F_T10_PI,
  VIRTIO_SCSI_SENSE_SIZE,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_S_FUNCTION_COMPLETE,
  VIRTIO_SCSI_S_OVERRUN,
  VIRTIO_SCSI_S_ABORTED,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_RESET,
  VIRTIO_SCSI_S_BUSY,
  VIRTIO_SCSI_S_TRANSPORT_FAILURE,
  VIRTIO_SCSI_S_TARGET_FAILURE,
  VIRTIO_SCSI_S_NEXUS_FAILURE,
  VIRTIO_SCSI_S_FAILURE,
  VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
  VIRTIO_SCSI_S_FUNCTION_REJECTED,
  VIRTIO_SCSI_S_INCORRECT_LUN,
  VIRTIO_SCSI_S_SIMPLE,
  VIRTIO_SCSI_S_ORDERED,
  VIRTIO_SCSI_S_HEAD,
  VIRTIO_SCSI_S_ACA,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_AN_QUERY,
  VIRTIO_SCSI_T_AN_SUBSCRIBE,
  VIRTIO_SCSI_T_TMF_ABORT_TASK,
  VIRTIO_SCSI_T_TMF_ABORT_TASK_SET,
  VIRTIO_SCSI_T_TMF_CLEAR_ACA,
  VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET,
  VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET,
  VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
  VIRTIO_SCSI_T_TMF_QUERY_TASK,
  VIRTIO_SCSI_T_TMF_QUERY_TASK_SET,
  VIRTIO_SCSI_EVT_ASYNC_OPERATIONAL_CHANGE,
  VIRTIO_SCSI_EVT_ASYNC_POWER_MGMT,
  VIRTIO_SCSI_EVT_ASYNC_EXTERNAL_REQUEST,
  VIRTIO_SCSI_EVT_ASYNC_MEDIA_CHANGE,
  VIRTIO_SCSI_EVT_ASYNC_MULTI_HOST,
  VIRTIO_SCSI_EVT_ASYNC_DEVICE_BUSY,
  VIRTIO_SCSI_T_NO_EVENT,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
  VIRTIO_SCSI_T_ASYNC_NOTIFY,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_EVT_RESET_HARD,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVENT_SIZE,
} from '@virtio-ts/device';

// §5.6.3 Feature bits.

// §5.6.2 Virtqueues.
export const SCSI_CONTROL_QUEUE = 0;
export const SCSI_EVENT_QUEUE = 1;
export const SCSI_FIRST_REQUEST_QUEUE = 2;

/** §5.6.4 `struct virtio_scsi_config` field offsets (all little-endian). */
export const SCSI_CONFIG = {
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

/** §5.6.4: defaults of the driver-writable `sense_size` and `cdb_size`. */
/** Largest `sense_size` / `cdb_size` a driver may write: bounds every per-request allocation. */
export const VIRTIO_SCSI_MAX_SENSE_SIZE = 252;
export const VIRTIO_SCSI_MAX_CDB_SIZE = 260;

// §5.6.6.1 response codes.

// §5.6.6.1 task attributes.

// §5.6.6.2 control queue request types and task management subtypes.

// §5.6.6.2.2 asynchronous notification event classes (bit numbers of the mask).

// §5.6.6.3 events.
/** `struct virtio_scsi_req_cmd` fixed part before the CDB: lun[8], id, task_attr, prio, crn. */
export const SCSI_CMD_HEADER_SIZE = 19;
/** `struct virtio_scsi_resp_cmd` fixed part before the sense bytes. */
export const SCSI_RESP_HEADER_SIZE = 12;

// SAM-5 status codes.
export const SAM_STAT_GOOD = 0x00;
export const SAM_STAT_CHECK_CONDITION = 0x02;
export const SAM_STAT_BUSY = 0x08;
export const SAM_STAT_RESERVATION_CONFLICT = 0x18;
export const SAM_STAT_TASK_ABORTED = 0x40;

// SPC-4 sense keys.
export const SENSE_NO_SENSE = 0x0;
export const SENSE_NOT_READY = 0x2;
export const SENSE_MEDIUM_ERROR = 0x3;
export const SENSE_HARDWARE_ERROR = 0x4;
export const SENSE_ILLEGAL_REQUEST = 0x5;
export const SENSE_UNIT_ATTENTION = 0x6;
export const SENSE_DATA_PROTECT = 0x7;
export const SENSE_ABORTED_COMMAND = 0xb;

/** SCSI operation codes (SPC-4 / SBC-3) the target implements. */
export const SCSI_OP = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT_6: 0x15,
  MODE_SENSE_6: 0x1a,
  START_STOP_UNIT: 0x1b,
  READ_CAPACITY_10: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  VERIFY_10: 0x2f,
  SYNCHRONIZE_CACHE_10: 0x35,
  WRITE_SAME_10: 0x41,
  UNMAP: 0x42,
  MODE_SELECT_10: 0x55,
  MODE_SENSE_10: 0x5a,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  VERIFY_16: 0x8f,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
} as const;

/** SERVICE ACTION IN(16) service actions (SBC-3). */
export const SAI_READ_CAPACITY_16 = 0x10;
export const SAI_GET_LBA_STATUS = 0x12;

/** Mode pages (SBC-3 §6.5). */
export const MODE_PAGE_CACHING = 0x08;
export const MODE_PAGE_CONTROL = 0x0a;
export const MODE_PAGE_ALL = 0x3f;

/** The LUN number range of flat space addressing (SAM-5 §4.7.7: 14 bits). */
export const SCSI_MAX_LUN = 0x3fff;
