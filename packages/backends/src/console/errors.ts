/**
 * Guest faults of the virtio-console device: counted in {@link ConsoleMetrics}`.faults`, never
 * thrown. The buffer is returned with length 0 (or the message ignored).
 */
export type ConsoleFault =
  /** A device-readable buffer in a receiveq (§5.3.6.1: MUST NOT). */
  | 'READABLE_IN_RECEIVEQ'
  /** A device-writable buffer in a transmitq (§5.3.6.1: MUST NOT). */
  | 'WRITABLE_IN_TRANSMITQ'
  /** A control message shorter than its 8-byte header. */
  | 'SHORT_CONTROL_MESSAGE'
  /** A control message naming a port that does not exist. */
  | 'UNKNOWN_PORT'
  /** A control event the driver may not send (or an unknown one). */
  | 'UNEXPECTED_EVENT'
  /** A control receive buffer too short for the message (it was truncated). */
  | 'CONTROL_BUFFER_TOO_SHORT';

export const CONSOLE_FAULTS: readonly ConsoleFault[] = [
  'READABLE_IN_RECEIVEQ',
  'WRITABLE_IN_TRANSMITQ',
  'SHORT_CONTROL_MESSAGE',
  'UNKNOWN_PORT',
  'UNEXPECTED_EVENT',
  'CONTROL_BUFFER_TOO_SHORT',
];
