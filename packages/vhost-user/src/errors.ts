const MARKER = Symbol.for('virtio-ts.error');

/** Stable codes of {@link VhostUserError}; each is a distinct fault. */
export type VhostUserErrorCode =
  /** A request id this back-end does not know or does not implement. */
  | 'UNKNOWN_REQUEST'
  /** The header's version bits are not 1, or reply bits in a request. */
  | 'BAD_VERSION'
  /** The payload size does not match what the request carries, or exceeds the bound. */
  | 'BAD_SIZE'
  /** Missing or extra file descriptors for the request. */
  | 'BAD_FDS'
  /** A payload value that is invalid (too many regions, bad vring index, overlapping memory…). */
  | 'BAD_PAYLOAD'
  /** A request that is not allowed in the current state (e.g. before SET_OWNER, unnegotiated feature). */
  | 'PROTOCOL_VIOLATION'
  /** The peer closed the connection, or sent a truncated message. */
  | 'DISCONNECTED';

export interface VhostUserErrorContext {
  readonly request?: string | number;
  readonly queue?: number;
  readonly size?: number;
}

/**
 * The one error class of `@virtio-ts/vhost-user`. A malformed message from the front-end is
 * reported with this and closes that connection only; the server keeps serving.
 */
export class VhostUserError extends Error {
  readonly code: VhostUserErrorCode;
  readonly context: VhostUserErrorContext;
  readonly [MARKER] = true;

  constructor(code: VhostUserErrorCode, message: string, context: VhostUserErrorContext = {}, options?: ErrorOptions) {
    const where = Object.entries(context).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${String(v)}`).join(' ');
    super(`${message} [${code}]${where ? ` (${where})` : ''}`, options);
    this.name = 'VhostUserError';
    this.code = code;
    this.context = context;
  }

  static isInstance(value: unknown): value is VhostUserError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'VhostUserError'
    );
  }
}
