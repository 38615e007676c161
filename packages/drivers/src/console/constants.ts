// VIRTIO 1.3 §5.3 (Console Device), driver side; names as in linux/include/uapi/linux/virtio_console.h.
// Spec constants live in @virtio-ts/device; the driver re-exports the ones it uses.
export {
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_DEVICE_READY,
  VIRTIO_CONSOLE_DEVICE_ADD,
  VIRTIO_CONSOLE_DEVICE_REMOVE,
  VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_RESIZE,
  VIRTIO_CONSOLE_PORT_OPEN,
  VIRTIO_CONSOLE_PORT_NAME,
} from '@virtio-ts/device';

/** §5.3.4 offsets. */
export const CONSOLE_CONFIG_OFFSETS = { cols: 0, rows: 2, maxNrPorts: 4, emergWr: 8 } as const;
