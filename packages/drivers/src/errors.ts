const MARKER = Symbol.for('virtio-ts.error');

/**
 * Stable codes of {@link DriverError}. Thrown (or rejected) to the code using a driver model.
 */
export type DriverErrorCode =
  /** The device completed the request with VIRTIO_BLK_S_IOERR (or an equivalent failure). */
  | 'IO_ERROR'
  /** The device answered VIRTIO_BLK_S_UNSUPP, or the feature the call needs was not negotiated. */
  | 'UNSUPPORTED'
  /** A write, discard or write-zeroes on a read-only device (VIRTIO_BLK_F_RO); never sent. */
  | 'READ_ONLY'
  /** A caller error: unaligned or out-of-range sectors, a bad length, an unknown port. */
  | 'INVALID_ARGUMENT'
  /** The device misbehaved: a used length larger than the buffer, an unknown status byte. */
  | 'PROTOCOL'
  /** The device was reset (or the driver closed) while the request was pending. */
  | 'DEVICE_RESET'
  /** A received packet failed its codec (truncated, bad length or checksum); the net stack drops it. */
  | 'MALFORMED'
  /** The net stack has no route to the destination, or its ARP resolution timed out. */
  | 'UNREACHABLE';

export interface DriverErrorContext {
  readonly device?: string;
  readonly queue?: number;
  readonly sector?: number;
  readonly length?: number;
  readonly port?: number;
  readonly status?: number;
  /** Net stack: the protocol (`ethernet`, `arp`, `ipv4`, `icmp`, `udp`, `virtio-net`). */
  readonly protocol?: string;
  /** Net stack: the address concerned (dotted IPv4 or a MAC). */
  readonly address?: string;
}

/** The one error class of `@virtio-ts/drivers`. */
export class DriverError extends Error {
  readonly code: DriverErrorCode;
  readonly context: DriverErrorContext;
  readonly [MARKER] = true;

  constructor(code: DriverErrorCode, message: string, context: DriverErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'DriverError';
    this.code = code;
    this.context = context;
  }

  /** True for a DriverError from any copy of this package. */
  static isInstance(value: unknown): value is DriverError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'DriverError'
    );
  }
}

function formatContext(context: DriverErrorContext): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(context)) if (value !== undefined) parts.push(`${key}=${String(value)}`);
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
