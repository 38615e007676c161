import { CONTROL_MESSAGE_SIZE } from './constants.js';

/** §5.3.6.2 `struct virtio_console_control`, with the bytes that follow it (PORT_NAME, RESIZE). */
export interface ControlMessage {
  readonly id: number;
  readonly event: number;
  readonly value: number;
  /** Bytes after the 8-byte header: the UTF-8 name (PORT_NAME) or `struct virtio_console_resize`. */
  readonly payload?: Uint8Array;
}

/** Encodes a control message (little-endian). */
export function encodeControlMessage(message: ControlMessage): Uint8Array {
  const payload = message.payload ?? new Uint8Array(0);
  const bytes = new Uint8Array(CONTROL_MESSAGE_SIZE + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, message.id, true);
  view.setUint16(4, message.event, true);
  view.setUint16(6, message.value, true);
  bytes.set(payload, CONTROL_MESSAGE_SIZE);
  return bytes;
}

/** Decodes a control message; null when shorter than the 8-byte header. */
export function decodeControlMessage(bytes: Uint8Array): ControlMessage | null {
  if (bytes.length < CONTROL_MESSAGE_SIZE) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const message = { id: view.getUint32(0, true), event: view.getUint16(4, true), value: view.getUint16(6, true) };
  return bytes.length > CONTROL_MESSAGE_SIZE ? { ...message, payload: bytes.slice(CONTROL_MESSAGE_SIZE) } : message;
}

/**
 * §5.3.6.2 `struct virtio_console_resize` (le16 cols, le16 rows), the payload of RESIZE. Older
 * Linux drivers read the two fields in the opposite order (rows first); we follow the spec, as QEMU does.
 */
export function encodeResize(cols: number, rows: number): Uint8Array {
  const bytes = new Uint8Array(4);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, cols, true);
  view.setUint16(2, rows, true);
  return bytes;
}
