const MARKER = Symbol.for('virtio-ts.error');

/**
 * Stable codes of {@link RingError}. The device-side chain codes name what the guest did wrong;
 * each is a distinct fault with its own code.
 */
export type RingErrorCode =
  // --- device side: a chain the (untrusted) driver made available is invalid
  /** A descriptor index (head, next, or packed buffer id) is >= queue size or the indirect table length. */
  | 'DESCRIPTOR_INDEX_OUT_OF_RANGE'
  /** Following `next` revisits a descriptor: a loop (0→1→0, a self-loop). */
  | 'DESCRIPTOR_LOOP'
  /** The chain has more descriptors than the queue size (or the indirect table holds). */
  | 'CHAIN_TOO_LONG'
  /** An indirect descriptor whose length is zero or not a multiple of 16. */
  | 'INDIRECT_TABLE_INVALID_LENGTH'
  /** VIRTQ_DESC_F_INDIRECT inside an indirect table (§2.7.5.3.1: MUST NOT). */
  | 'NESTED_INDIRECT'
  /** An indirect descriptor that also has VIRTQ_DESC_F_NEXT (§2.7.5.3.1: MUST NOT). */
  | 'INDIRECT_WITH_NEXT'
  /** VIRTQ_DESC_F_INDIRECT used although VIRTIO_RING_F_INDIRECT_DESC was not negotiated. */
  | 'INDIRECT_NOT_NEGOTIATED'
  /** A device-readable descriptor after a device-writable one (§2.7.4.2: MUST NOT). */
  | 'READABLE_AFTER_WRITABLE'
  /** A buffer, indirect table or ring area is not inside guest memory. */
  | 'ADDRESS_OUT_OF_RANGE'
  /** The chain's lengths sum past 2^32 - 1. */
  | 'TOTAL_LENGTH_OVERFLOW'
  /** The driver's available index moved by more than the queue size: the ring is corrupt. */
  | 'AVAIL_INDEX_JUMP'
  /** A head (split) or buffer id (packed) made available again while the device still holds it. */
  | 'HEAD_IN_FLIGHT'
  /** pushUsed with a head the device does not hold, or a length that does not fit. */
  | 'INVALID_USED'
  /** The queue is broken after an earlier fatal error; only a reset recovers it. */
  | 'QUEUE_BROKEN'
  // --- driver side
  /** Not enough free descriptors to add the buffer. */
  | 'QUEUE_FULL'
  /** The device returned a used id or length that is invalid. */
  | 'INVALID_USED_ELEMENT'
  // --- both sides
  /** Queue size, ring addresses or alignment violate §2.7 / §2.8. */
  | 'INVALID_LAYOUT'
  /** A saved queue state that cannot be restored (bad size, indices or addresses). */
  | 'INVALID_STATE'
  /** A caller error: bad arguments (e.g. an empty buffer list). */
  | 'INVALID_ARGUMENT';

export interface RingErrorContext {
  readonly queue?: number;
  readonly head?: number;
  readonly descriptor?: number;
  readonly address?: number;
  readonly length?: number;
}

/**
 * The one error class of `@virtio-ts/ring`.
 *
 * Device side: thrown by `pop()` for a chain the guest got wrong. The device answers the guest
 * (an error status or DEVICE_NEEDS_RESET); it never crashes. `fatal` says whether the queue
 * marked itself broken (no later chain can be trusted) or consumed only that chain.
 */
export class RingError extends Error {
  readonly code: RingErrorCode;
  readonly context: RingErrorContext;
  /** True when the queue is now broken and only a reset recovers it. */
  readonly fatal: boolean;
  readonly [MARKER] = true;

  constructor(code: RingErrorCode, message: string, context: RingErrorContext = {}, options?: ErrorOptions & { fatal?: boolean }) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'RingError';
    this.code = code;
    this.context = context;
    this.fatal = options?.fatal ?? false;
  }

  /** True for a RingError from any copy of this package. */
  static isInstance(value: unknown): value is RingError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'RingError'
    );
  }
}

function formatContext(context: RingErrorContext): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(context)) {
    if (value === undefined) continue;
    parts.push(key === 'address' ? `${key}=0x${(value as number).toString(16)}` : `${key}=${String(value)}`);
  }
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
