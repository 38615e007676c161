const MARKER = Symbol.for('virtio-ts.error');

/** Stable codes of {@link BlockError}; each is a distinct fault. */
export type BlockErrorCode =
  /** The host I/O failed (the cause carries the errno). */
  | 'IO'
  /** The host is out of space (ENOSPC, EDQUOT). */
  | 'NO_SPACE'
  /** A request with a bad offset, length or alignment, or a bad option. */
  | 'INVALID_ARGUMENT'
  /** A write, discard or zeroing request on a read-only driver. */
  | 'READ_ONLY'
  /** An operation or image feature this driver does not implement (named in the message). */
  | 'UNSUPPORTED'
  /** Image metadata is inconsistent: refuse rather than guess. */
  | 'CORRUPT_IMAGE'
  /** The bytes are not an image of the requested format. */
  | 'INVALID_FORMAT'
  /** The driver was closed. */
  | 'CLOSED';

export interface BlockErrorContext {
  readonly path?: string;
  readonly offset?: number;
  readonly length?: number;
  readonly op?: string;
}

/**
 * The one error class of `@virtio-ts/block`. Thrown to the caller (a device backend turns it into
 * VIRTIO_BLK_S_IOERR or a SCSI sense code; vimg prints message and code).
 */
export class BlockError extends Error {
  readonly code: BlockErrorCode;
  readonly context: BlockErrorContext;
  readonly [MARKER] = true;

  constructor(code: BlockErrorCode, message: string, context: BlockErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'BlockError';
    this.code = code;
    this.context = context;
  }

  /** True for a BlockError from any copy of this package. */
  static isInstance(value: unknown): value is BlockError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'BlockError'
    );
  }
}

function formatContext(context: BlockErrorContext): string {
  const parts: string[] = [];
  if (context.op !== undefined) parts.push(`op=${context.op}`);
  if (context.path !== undefined) parts.push(`path=${context.path}`);
  if (context.offset !== undefined) parts.push(`offset=${context.offset}`);
  if (context.length !== undefined) parts.push(`length=${context.length}`);
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
