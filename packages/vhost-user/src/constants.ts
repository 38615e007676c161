// QEMU docs/interop/vhost-user.rst: front-end request ids, header flags, protocol feature bits.

/** Front-end → back-end requests (the `request` header field). */
export const VhostUserRequest = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
} as const;

export type VhostUserRequestName = keyof typeof VhostUserRequest;

export const REQUEST_NAMES: ReadonlyMap<number, VhostUserRequestName> = new Map(
  Object.entries(VhostUserRequest).map(([name, id]) => [id, name as VhostUserRequestName]),
);

/** Header: request (u32), flags (u32), size (u32), native byte order (little-endian on our hosts). */
export const HEADER_SIZE = 12;
/** Lower 2 bits of flags: the protocol version, currently 1. */
export const VHOST_USER_VERSION = 0x1;
export const VHOST_USER_VERSION_MASK = 0x3;
/** Bit 2: set on every reply from the back-end. */
export const VHOST_USER_REPLY_MASK = 1 << 2;
/** Bit 3: the front-end wants a REPLY_ACK (when negotiated). */
export const VHOST_USER_NEED_REPLY_MASK = 1 << 3;

/** Payload bits of SET_VRING_KICK/CALL/ERR: vring index in bits 0–7, bit 8 = no fd (polling). */
export const VHOST_USER_VRING_IDX_MASK = 0xff;
export const VHOST_USER_VRING_NOFD_MASK = 1 << 8;

/** Feature bit 30 of GET_FEATURES: the back-end speaks GET/SET_PROTOCOL_FEATURES. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

export const VHOST_USER_PROTOCOL_F_MQ = 0;
export const VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1;
export const VHOST_USER_PROTOCOL_F_RARP = 2;
export const VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;
export const VHOST_USER_PROTOCOL_F_MTU = 4;
export const VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5;
export const VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6;
export const VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7;
export const VHOST_USER_PROTOCOL_F_PAGEFAULT = 8;
export const VHOST_USER_PROTOCOL_F_CONFIG = 9;
export const VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10;
export const VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11;
export const VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12;
export const VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13;
export const VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14;
export const VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;
export const VHOST_USER_PROTOCOL_F_STATUS = 16;

/** SET_MEM_TABLE carries at most 8 regions (VHOST_MEMORY_BASELINE_NREGIONS). */
export const VHOST_MEMORY_BASELINE_NREGIONS = 8;
/** GET/SET_CONFIG payloads carry at most 256 bytes of configuration space. */
export const VHOST_USER_MAX_CONFIG_SIZE = 256;
/**
 * Largest payload we accept. The largest known request is SET_MEM_TABLE (8 + 8 × 32 = 264 bytes)
 * or a config access (12 + 256); 4 KiB leaves room and bounds what a hostile peer makes us buffer.
 */
export const MAX_PAYLOAD_SIZE = 4096;
/** Most fds one message may carry: SET_MEM_TABLE's 8 regions. */
export const MAX_FDS_PER_MESSAGE = 8;
/** SET_VRING_ADDR flags bit 0: log used-ring writes (migration). */
export const VHOST_VRING_F_LOG = 1;
