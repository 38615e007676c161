import { BlockError } from './errors.js';

/**
 * Validates a request range against a virtual size: non-negative safe integers, multiples of
 * `alignment`, inside `[0, size]`. Throws INVALID_ARGUMENT.
 */
export function checkRequest(op: string, offset: number, length: number, size: number, alignment: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > size
  ) {
    throw new BlockError('INVALID_ARGUMENT', `request outside the disk (size ${size})`, { op, offset, length });
  }
  if (alignment > 1 && (offset % alignment !== 0 || length % alignment !== 0)) {
    throw new BlockError('INVALID_ARGUMENT', `request not aligned to ${alignment} bytes`, { op, offset, length });
  }
}

/** Throws CLOSED when `closed`. */
export function checkOpen(closed: boolean, op: string): void {
  if (closed) throw new BlockError('CLOSED', 'the driver is closed', { op });
}

/** Throws READ_ONLY when `readOnly`. */
export function checkWritable(readOnly: boolean, op: string): void {
  if (readOnly) throw new BlockError('READ_ONLY', 'the driver is read-only', { op });
}
