const MARKER = Symbol.for('virtio-ts.error');

/** Stable codes of {@link MemoryError}. */
export type MemoryErrorCode =
  /** The range touches an address that no region maps (a hole, or past the end of RAM). */
  | 'OUT_OF_BOUNDS'
  /** A single-region operation (a zero-copy view, an atomic) spans two regions. */
  | 'CROSSES_REGION'
  /** The address or length is negative, not an integer, or the range ends past 2^53. */
  | 'INVALID_ADDRESS'
  /** An atomic access whose address is not naturally aligned. */
  | 'MISALIGNED'
  /** A region that cannot be added: bad size or offset, overlapping another, backing too small. */
  | 'INVALID_REGION';

export interface MemoryErrorContext {
  readonly address?: number;
  readonly length?: number;
  readonly op?: string;
}

/**
 * The one error class of `@virtio-ts/memory`.
 *
 * Thrown to the caller (the ring, a device). A guest-controlled address that fails a check
 * arrives here; the ring turns it into a chain error reported to the guest, never a crash.
 */
export class MemoryError extends Error {
  readonly code: MemoryErrorCode;
  readonly context: MemoryErrorContext;
  readonly [MARKER] = true;

  constructor(code: MemoryErrorCode, message: string, context: MemoryErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'MemoryError';
    this.code = code;
    this.context = context;
  }

  /** True for a MemoryError from any copy of this package. */
  static isInstance(value: unknown): value is MemoryError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'MemoryError'
    );
  }
}

function formatContext(context: MemoryErrorContext): string {
  const parts: string[] = [];
  if (context.op !== undefined) parts.push(`op=${context.op}`);
  if (context.address !== undefined) parts.push(`address=0x${context.address.toString(16)}`);
  if (context.length !== undefined) parts.push(`length=${context.length}`);
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
