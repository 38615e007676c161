// VIRTIO 1.3 §2.7 (split virtqueues) and §2.8 (packed virtqueues); names as in the spec and
// linux/include/uapi/linux/virtio_ring.h.

/** §2.7.5: this marks a buffer as continuing via the next field. */
export const VIRTQ_DESC_F_NEXT = 1;
/** §2.7.5: this marks a buffer as device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** §2.7.5.3: the buffer contains a list of buffer descriptors. */
export const VIRTQ_DESC_F_INDIRECT = 4;

/** §2.7.6: avail.flags bit asking the device not to interrupt (without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** §2.7.8: used.flags bit asking the driver not to notify (without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** §2.8.1: packed descriptor flag bits. */
export const VIRTQ_DESC_F_AVAIL = 1 << 7;
export const VIRTQ_DESC_F_USED = 1 << 15;

/** §2.8.10: event suppression flags (packed). */
export const RING_EVENT_FLAGS_ENABLE = 0x0;
export const RING_EVENT_FLAGS_DISABLE = 0x1;
export const RING_EVENT_FLAGS_DESC = 0x2;

/** §6: reserved feature bits that the ring layer implements. */
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;

/** §2.7 / §2.8: the largest queue size (split: a power of two up to 32768; packed: any size up to 32768). */
export const MAX_QUEUE_SIZE = 32768;

/** Size in bytes of one descriptor, split or packed (§2.7.5, §2.8.13). */
export const DESCRIPTOR_SIZE = 16;
