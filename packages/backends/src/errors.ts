const MARKER = Symbol.for('virtio-ts.error');

/**
 * Stable codes of {@link BackendError}. These are thrown to the VMM (the host side: bad options,
 * a snapshot that cannot be restored, a host API misuse). A fault of the *guest* is never thrown:
 * it becomes a status byte (blk), a shorter buffer, or DEVICE_NEEDS_RESET, plus a metrics counter.
 */
export type BackendErrorCode =
  /** A device option is out of range (serial longer than 20 bytes, zero queues, ...). */
  | 'INVALID_OPTION'
  /** A saved device state that fails validation on restore (version, sizes, ranges). */
  | 'INVALID_STATE'
  /** A host-side call that needs an activated device (or a negotiated feature) came too early. */
  | 'NOT_READY'
  /** A console port number that does not exist. */
  | 'NO_SUCH_PORT'
  /** A host I/O call of a net back-end failed (TAP, socket); `context.errno` names the errno, `cause` has the details. */
  | 'HOST_IO'
  /** A net back-end's peer broke its framing (a `-netdev stream` length of 0 or over 65549); that connection is closed. */
  | 'PEER_PROTOCOL';

export interface BackendErrorContext {
  readonly device?: string;
  readonly field?: string;
  readonly port?: number;
  /** The errno name (`EBADF`, `ENOENT`, ...) of a failed host call. */
  readonly errno?: string;
}

/**
 * The one error class of `@virtio-ts/backends`, thrown to the VMM (never to the guest).
 */
export class BackendError extends Error {
  readonly code: BackendErrorCode;
  readonly context: BackendErrorContext;
  readonly [MARKER] = true;

  constructor(code: BackendErrorCode, message: string, context: BackendErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'BackendError';
    this.code = code;
    this.context = context;
  }

  /** True for a BackendError from any copy of this package. */
  static isInstance(value: unknown): value is BackendError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'BackendError'
    );
  }
}

function formatContext(context: BackendErrorContext): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(context)) {
    if (value !== undefined) parts.push(`${key}=${String(value)}`);
  }
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
