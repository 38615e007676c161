// Spec constants of VIRTIO 1.3, named as in linux/include/uapi/linux/virtio_*.h (and rust-vmm's
// virtio-bindings). Feature bits are bit NUMBERS (as in uapi); use `featureBit(n)` for the
// 64-bit mask as a bigint.

export {
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_IN_ORDER,
  MAX_QUEUE_SIZE,
} from '@virtio-ts/ring';

// --- §5: device ids -------------------------------------------------------------------------

/** §5 "Device Types": the virtio device id of each device type. 0 is reserved (invalid). */
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_BALLOON = 5;
export const VIRTIO_ID_IOMEM = 6;
export const VIRTIO_ID_RPMSG = 7;
export const VIRTIO_ID_SCSI = 8;
export const VIRTIO_ID_9P = 9;
export const VIRTIO_ID_MAC80211_WLAN = 10;
export const VIRTIO_ID_RPROC_SERIAL = 11;
export const VIRTIO_ID_CAIF = 12;
export const VIRTIO_ID_MEMORY_BALLOON = 13;
export const VIRTIO_ID_GPU = 16;
export const VIRTIO_ID_CLOCK = 17;
export const VIRTIO_ID_INPUT = 18;
export const VIRTIO_ID_VSOCK = 19;
export const VIRTIO_ID_CRYPTO = 20;
export const VIRTIO_ID_SIGNAL_DIST = 21;
export const VIRTIO_ID_PSTORE = 22;
export const VIRTIO_ID_IOMMU = 23;
export const VIRTIO_ID_MEM = 24;
export const VIRTIO_ID_SOUND = 25;
export const VIRTIO_ID_FS = 26;
export const VIRTIO_ID_PMEM = 27;
export const VIRTIO_ID_RPMB = 28;
export const VIRTIO_ID_MAC80211_HWSIM = 29;
export const VIRTIO_ID_VIDEO_ENCODER = 30;
export const VIRTIO_ID_VIDEO_DECODER = 31;
export const VIRTIO_ID_SCMI = 32;
export const VIRTIO_ID_NITRO_SEC_MOD = 33;
export const VIRTIO_ID_I2C_ADAPTER = 34;
export const VIRTIO_ID_WATCHDOG = 35;
export const VIRTIO_ID_CAN = 36;
export const VIRTIO_ID_PARAM_SERV = 38;
export const VIRTIO_ID_AUDIO_POLICY = 39;
export const VIRTIO_ID_BT = 40;
export const VIRTIO_ID_GPIO = 41;
export const VIRTIO_ID_RDMA = 42;

// --- §2.1: device status field ---------------------------------------------------------------

/** §2.1: the guest OS has found the device and recognized it as a valid virtio device. */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
/** §2.1: the guest OS knows how to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER = 2;
/** §2.1: the driver is set up and ready to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
/** §2.1: the driver has acknowledged all the features it understands; negotiation is complete. */
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
/** §2.1: the device has experienced an error from which it can't recover (set by the device). */
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
/** §2.1: something went wrong in the guest; it has given up on the device. */
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// --- §6: reserved feature bits (besides the ring ones re-exported above) ----------------------

/** Legacy (§6): notify even when the available ring is empty. Never offered by modern devices here. */
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
/** Legacy (§6): any descriptor layout. Implied by VERSION_1. */
export const VIRTIO_F_ANY_LAYOUT = 27;
/** §6: compliance with this specification (VIRTIO 1.x); devices here require it. */
export const VIRTIO_F_VERSION_1 = 32;
/** §6: the device is behind an IOMMU / platform-specific DMA translation. */
export const VIRTIO_F_ACCESS_PLATFORM = 33;
/** §6: memory accesses by driver and device are ordered as the platform orders them. */
export const VIRTIO_F_ORDER_PLATFORM = 36;
/** §6: the device supports single root I/O virtualization (PCI only). */
export const VIRTIO_F_SR_IOV = 37;
/** §6: the driver passes extra data (besides the queue index) in its notifications. */
export const VIRTIO_F_NOTIFICATION_DATA = 38;
/** §6: the driver uses the device-provided `queue_notif_config_data` in notifications. */
export const VIRTIO_F_NOTIF_CONFIG_DATA = 39;
/** §6: the driver can reset a queue individually (§2.6.1). */
export const VIRTIO_F_RING_RESET = 40;
/** §6: the device exposes administration virtqueues. */
export const VIRTIO_F_ADMIN_VQ = 41;
/** §6: the driver can suspend the device. */
export const VIRTIO_F_SUSPEND = 43;

// --- §5.2 block -------------------------------------------------------------------------------
export const VIRTIO_BLK_F_BARRIER = 0; // legacy
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_SCSI = 7; // legacy
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;
export const VIRTIO_BLK_F_LIFETIME = 15;
export const VIRTIO_BLK_F_SECURE_ERASE = 16;
export const VIRTIO_BLK_F_ZONED = 17;

/** §5.2.6: request types (shared by the device and the driver side). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_T_SECURE_ERASE = 14;

/** §5.2.6: status byte values. */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

// --- §5.1 network -----------------------------------------------------------------------------
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_GUEST_UFO = 10;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_HOST_UFO = 14;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;
export const VIRTIO_NET_F_CTRL_VLAN = 19;
export const VIRTIO_NET_F_CTRL_RX_EXTRA = 20;
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
export const VIRTIO_NET_F_MQ = 22;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;
export const VIRTIO_NET_F_VQ_NOTF_COAL = 52;
export const VIRTIO_NET_F_NOTF_COAL = 53;
export const VIRTIO_NET_F_GUEST_USO4 = 54;
export const VIRTIO_NET_F_GUEST_USO6 = 55;
export const VIRTIO_NET_F_HOST_USO = 56;
export const VIRTIO_NET_F_HASH_REPORT = 57;
export const VIRTIO_NET_F_GUEST_HDRLEN = 59;
export const VIRTIO_NET_F_RSS = 60;
export const VIRTIO_NET_F_RSC_EXT = 61;
export const VIRTIO_NET_F_STANDBY = 62;
export const VIRTIO_NET_F_SPEED_DUPLEX = 63;
/** §5.1.4: `status` bits. */
export const VIRTIO_NET_S_LINK_UP = 1;
export const VIRTIO_NET_S_ANNOUNCE = 2;

// --- §5.3 console -----------------------------------------------------------------------------
export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

/** §5.3.6.2: control message events (shared by the device and the driver side). */
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_DEVICE_ADD = 1;
export const VIRTIO_CONSOLE_DEVICE_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;

// --- §5.6 SCSI host ---------------------------------------------------------------------------
export const VIRTIO_SCSI_F_INOUT = 0;
export const VIRTIO_SCSI_F_HOTPLUG = 1;
export const VIRTIO_SCSI_F_CHANGE = 2;
export const VIRTIO_SCSI_F_T10_PI = 3;

/** §5.6.6: virtio-scsi request/response values, event types and the spec's default sizes (shared by both sides). */
export const VIRTIO_SCSI_SENSE_SIZE = 96;
export const VIRTIO_SCSI_CDB_SIZE = 32;
export const VIRTIO_SCSI_S_OK = 0;
export const VIRTIO_SCSI_S_FUNCTION_COMPLETE = 0;
export const VIRTIO_SCSI_S_OVERRUN = 1;
export const VIRTIO_SCSI_S_ABORTED = 2;
export const VIRTIO_SCSI_S_BAD_TARGET = 3;
export const VIRTIO_SCSI_S_RESET = 4;
export const VIRTIO_SCSI_S_BUSY = 5;
export const VIRTIO_SCSI_S_TRANSPORT_FAILURE = 6;
export const VIRTIO_SCSI_S_TARGET_FAILURE = 7;
export const VIRTIO_SCSI_S_NEXUS_FAILURE = 8;
export const VIRTIO_SCSI_S_FAILURE = 9;
export const VIRTIO_SCSI_S_FUNCTION_SUCCEEDED = 10;
export const VIRTIO_SCSI_S_FUNCTION_REJECTED = 11;
export const VIRTIO_SCSI_S_INCORRECT_LUN = 12;
export const VIRTIO_SCSI_S_SIMPLE = 0;
export const VIRTIO_SCSI_S_ORDERED = 1;
export const VIRTIO_SCSI_S_HEAD = 2;
export const VIRTIO_SCSI_S_ACA = 3;
export const VIRTIO_SCSI_T_TMF = 0;
export const VIRTIO_SCSI_T_AN_QUERY = 1;
export const VIRTIO_SCSI_T_AN_SUBSCRIBE = 2;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK = 0;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK_SET = 1;
export const VIRTIO_SCSI_T_TMF_CLEAR_ACA = 2;
export const VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET = 3;
export const VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET = 4;
export const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET = 5;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK = 6;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK_SET = 7;
export const VIRTIO_SCSI_EVT_ASYNC_OPERATIONAL_CHANGE = 2;
export const VIRTIO_SCSI_EVT_ASYNC_POWER_MGMT = 4;
export const VIRTIO_SCSI_EVT_ASYNC_EXTERNAL_REQUEST = 8;
export const VIRTIO_SCSI_EVT_ASYNC_MEDIA_CHANGE = 16;
export const VIRTIO_SCSI_EVT_ASYNC_MULTI_HOST = 32;
export const VIRTIO_SCSI_EVT_ASYNC_DEVICE_BUSY = 64;
export const VIRTIO_SCSI_T_NO_EVENT = 0;
export const VIRTIO_SCSI_T_TRANSPORT_RESET = 1;
export const VIRTIO_SCSI_T_ASYNC_NOTIFY = 2;
export const VIRTIO_SCSI_T_PARAM_CHANGE = 3;
export const VIRTIO_SCSI_T_EVENTS_MISSED = 0x8000_0000;
export const VIRTIO_SCSI_EVT_RESET_HARD = 0;
export const VIRTIO_SCSI_EVT_RESET_RESCAN = 1;
export const VIRTIO_SCSI_EVT_RESET_REMOVED = 2;
export const VIRTIO_SCSI_EVENT_SIZE = 16;


// --- device configuration layouts (§5.x "Device configuration layout") ------------------------

/** One field of a device configuration space: byte offset and width (1, 2, 4, 8, or a byte array's length). */
export interface ConfigField {
  readonly offset: number;
  readonly size: number;
}

/** §5.2.4 `struct virtio_blk_config` (little-endian). */
export const VIRTIO_BLK_CONFIG = Object.freeze({
  capacity: { offset: 0, size: 8 },
  sizeMax: { offset: 8, size: 4 },
  segMax: { offset: 12, size: 4 },
  geometryCylinders: { offset: 16, size: 2 },
  geometryHeads: { offset: 18, size: 1 },
  geometrySectors: { offset: 19, size: 1 },
  blkSize: { offset: 20, size: 4 },
  physicalBlockExp: { offset: 24, size: 1 },
  alignmentOffset: { offset: 25, size: 1 },
  minIoSize: { offset: 26, size: 2 },
  optIoSize: { offset: 28, size: 4 },
  writeback: { offset: 32, size: 1 },
  numQueues: { offset: 34, size: 2 },
  maxDiscardSectors: { offset: 36, size: 4 },
  maxDiscardSeg: { offset: 40, size: 4 },
  discardSectorAlignment: { offset: 44, size: 4 },
  maxWriteZeroesSectors: { offset: 48, size: 4 },
  maxWriteZeroesSeg: { offset: 52, size: 4 },
  writeZeroesMayUnmap: { offset: 56, size: 1 },
  maxSecureEraseSectors: { offset: 60, size: 4 },
  maxSecureEraseSeg: { offset: 64, size: 4 },
  secureEraseSectorAlignment: { offset: 68, size: 4 },
  zonedZoneSectors: { offset: 72, size: 4 },
  zonedMaxOpenZones: { offset: 76, size: 4 },
  zonedMaxActiveZones: { offset: 80, size: 4 },
  zonedMaxAppendSectors: { offset: 84, size: 4 },
  zonedWriteGranularity: { offset: 88, size: 4 },
  zonedModel: { offset: 92, size: 1 },
} as const satisfies Record<string, ConfigField>);
/** Size in bytes of `struct virtio_blk_config` including the zoned fields. */
export const VIRTIO_BLK_CONFIG_SIZE = 96;

/** §5.1.4 `struct virtio_net_config`. */
export const VIRTIO_NET_CONFIG = Object.freeze({
  mac: { offset: 0, size: 6 },
  status: { offset: 6, size: 2 },
  maxVirtqueuePairs: { offset: 8, size: 2 },
  mtu: { offset: 10, size: 2 },
  speed: { offset: 12, size: 4 },
  duplex: { offset: 16, size: 1 },
  rssMaxKeySize: { offset: 17, size: 1 },
  rssMaxIndirectionTableLength: { offset: 18, size: 2 },
  supportedHashTypes: { offset: 20, size: 4 },
} as const satisfies Record<string, ConfigField>);
export const VIRTIO_NET_CONFIG_SIZE = 24;

/** §5.3.4 `struct virtio_console_config`. */
export const VIRTIO_CONSOLE_CONFIG = Object.freeze({
  cols: { offset: 0, size: 2 },
  rows: { offset: 2, size: 2 },
  maxNrPorts: { offset: 4, size: 4 },
  emergWr: { offset: 8, size: 4 },
} as const satisfies Record<string, ConfigField>);
export const VIRTIO_CONSOLE_CONFIG_SIZE = 12;

/** §5.6.4 `struct virtio_scsi_config`. */
export const VIRTIO_SCSI_CONFIG = Object.freeze({
  numQueues: { offset: 0, size: 4 },
  segMax: { offset: 4, size: 4 },
  maxSectors: { offset: 8, size: 4 },
  cmdPerLun: { offset: 12, size: 4 },
  eventInfoSize: { offset: 16, size: 4 },
  senseSize: { offset: 20, size: 4 },
  cdbSize: { offset: 24, size: 4 },
  maxChannel: { offset: 28, size: 2 },
  maxTarget: { offset: 30, size: 2 },
  maxLun: { offset: 32, size: 4 },
} as const satisfies Record<string, ConfigField>);
export const VIRTIO_SCSI_CONFIG_SIZE = 36;

/** The entropy device (§5.4) has no device configuration space and no feature bits. */
export const VIRTIO_RNG_CONFIG_SIZE = 0;
