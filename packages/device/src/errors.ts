const MARKER = Symbol.for('virtio-ts.error');

/**
 * Stable codes of {@link DeviceError}.
 *
 * Guest-caused codes (the driver did something the spec forbids) are never thrown out of a
 * transport's register handlers: the transport records them (`lastError`, `onError`) and answers
 * the guest as the spec says (the bit does not stick, NO_VECTOR, DEVICE_NEEDS_RESET). Caller
 * codes are thrown to the VMM / driver code that made the call.
 */
export type DeviceErrorCode =
  // --- guest-caused (reported to the guest, recorded by the transport)
  /** A device_status write that skips a step of §3.1.1 or clears a bit without writing 0. */
  | 'INVALID_STATUS_TRANSITION'
  /** FEATURES_OK refused: an unoffered feature, a required one dropped, or VERSION_1 missing (§2.2.1). */
  | 'FEATURES_NOT_ACCEPTED'
  /** A driver_feature write after FEATURES_OK or before DRIVER (§3.1.1). */
  | 'FEATURES_WRITE_IGNORED'
  /** A queue index that does not exist (e.g. notify of 0xFFFF, queue_select past num_queues). */
  | 'INVALID_QUEUE'
  /** A queue operation on a queue that is not enabled, or a configuration change on an enabled one. */
  | 'QUEUE_NOT_READY'
  /** queue_size 0, larger than the maximum, or not a power of two for a split ring (§2.7). */
  | 'INVALID_QUEUE_SIZE'
  /** Queue areas unaligned, overlapping the end of guest memory, or unmapped: NEEDS_RESET. */
  | 'QUEUE_ADDRESS_INVALID'
  /** A register access of a width, offset or direction the transport does not define. */
  | 'INVALID_ACCESS'
  /** A device configuration access past `configSize`. */
  | 'CONFIG_OUT_OF_RANGE'
  /** The device implementation failed (threw) in activate, notify or a config access: NEEDS_RESET. */
  | 'DEVICE_FAILURE'
  // --- caller errors (thrown)
  /** The device cannot do this (an optional capability it lacks). */
  | 'UNSUPPORTED'
  /** The device refused FEATURES_OK while the driver was negotiating (driver side). */
  | 'NEGOTIATION_FAILED'
  /** Guest-memory allocator exhausted. */
  | 'OUT_OF_MEMORY'
  /** A caller bug: bad arguments, or a call in the wrong state. */
  | 'INVALID_ARGUMENT'
  /** The device never finished resetting / presented an inconsistent configuration (driver side). */
  | 'DEVICE_UNRESPONSIVE'
  /** A saved state that cannot be restored (thrown to the VMM; the state is untrusted input, H16). */
  | 'INVALID_STATE';

export interface DeviceErrorContext {
  readonly deviceType?: number;
  readonly queue?: number;
  readonly status?: number;
  readonly offset?: number;
  readonly size?: number;
  readonly address?: number;
  readonly features?: bigint;
}

/**
 * The one error class of `@virtio-ts/device` (and of the driver-side transports built on it).
 *
 * Guest-caused codes are recorded by transports, not thrown at the VMM; see
 * {@link DeviceErrorCode}.
 */
export class DeviceError extends Error {
  readonly code: DeviceErrorCode;
  readonly context: DeviceErrorContext;
  readonly [MARKER] = true;

  constructor(code: DeviceErrorCode, message: string, context: DeviceErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'DeviceError';
    this.code = code;
    this.context = context;
  }

  /** True for a DeviceError from any copy of this package. */
  static isInstance(value: unknown): value is DeviceError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'DeviceError'
    );
  }
}

function formatContext(context: DeviceErrorContext): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(context)) {
    if (value === undefined) continue;
    if (key === 'address' || key === 'features' || key === 'status') parts.push(`${key}=0x${(value as number | bigint).toString(16)}`);
    else parts.push(`${key}=${String(value)}`);
  }
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
