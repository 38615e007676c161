// VIRTIO 1.3 §5.3 (Console Device); names as in linux/include/uapi/linux/virtio_console.h.
// Spec constants live in @virtio-ts/device; the device re-exports the ones it uses.
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

/** §5.3.6.2: `struct virtio_console_control` is le32 id, le16 event, le16 value. */
export const CONTROL_MESSAGE_SIZE = 8;

/** §5.3.4: byte offsets in `struct virtio_console_config`. */
export const CONSOLE_CONFIG = {
  cols: 0,
  rows: 2,
  maxNrPorts: 4,
  emergWr: 8,
  size: 12,
} as const;

/** §5.3.2: queue indices. Port 0 uses 0/1, the control queues 2/3, port n ≥ 1 uses 2n+2 / 2n+3. */
export const CONTROL_RECEIVEQ = 2;
export const CONTROL_TRANSMITQ = 3;

/** receiveq of port `port` (§5.3.2). */
export function receiveQueueOf(port: number): number {
  return port === 0 ? 0 : 2 * port + 2;
}

/** transmitq of port `port` (§5.3.2). */
export function transmitQueueOf(port: number): number {
  return receiveQueueOf(port) + 1;
}

/** The port and direction of queue `index` that is not a control queue, or undefined. */
export function portOfQueue(index: number): { port: number; direction: 'receive' | 'transmit' } | undefined {
  if (index === 0 || index === 1) return { port: 0, direction: index === 0 ? 'receive' : 'transmit' };
  if (index < 4) return undefined;
  return { port: (index - 2) >> 1, direction: index % 2 === 0 ? 'receive' : 'transmit' };
}
