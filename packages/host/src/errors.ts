import { constants } from 'node:os';

const MARKER = Symbol.for('virtio-ts.error');

/**
 * Stable codes of {@link HostError}: an errno name (`EBADF`, `EAGAIN`, `EMFILE`, …) for a failed
 * system call, or one of our own codes.
 */
export type HostErrorCode =
  | `E${string}`
  /** This platform lacks the primitive (not Linux x86_64/arm64, or libc not loadable). */
  | 'UNSUPPORTED'
  /** A caller error caught before the system call. */
  | 'INVALID_ARGUMENT'
  /** The object was closed. */
  | 'CLOSED'
  /** A message did not fit: data or file descriptors were truncated by the kernel. */
  | 'TRUNCATED';

export interface HostErrorContext {
  readonly syscall?: string;
  readonly fd?: number;
  readonly path?: string;
}

/** The one error class of `@virtio-ts/host`. Thrown to the caller. */
export class HostError extends Error {
  readonly code: HostErrorCode;
  /** The raw errno, when a system call failed. */
  readonly errno: number | undefined;
  readonly context: HostErrorContext;
  readonly [MARKER] = true;

  constructor(code: HostErrorCode, message: string, context: HostErrorContext = {}, errno?: number, options?: ErrorOptions) {
    const where = [context.syscall && `syscall=${context.syscall}`, context.fd !== undefined && `fd=${context.fd}`, context.path && `path=${context.path}`]
      .filter(Boolean)
      .join(' ');
    super(`${message} [${code}]${where ? ` (${where})` : ''}`, options);
    this.name = 'HostError';
    this.code = code;
    this.errno = errno;
    this.context = context;
  }

  static isInstance(value: unknown): value is HostError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'HostError'
    );
  }
}

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name);

/** The errno name of a number (`9` → `EBADF`), or `E<number>` when unknown. */
export function errnoName(errno: number): `E${string}` {
  return (errnoNames.get(errno) ?? `E${errno}`) as `E${string}`;
}

/** A HostError for a failed system call, named after its errno. */
export function syscallError(syscall: string, errno: number, context: Omit<HostErrorContext, 'syscall'> = {}): HostError {
  const name = errnoName(errno);
  return new HostError(name, `${syscall} failed: ${name}`, { ...context, syscall }, errno);
}

/** A koffi async-call failure as an Error (it reports plain values in rare cases). */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new HostError('EIO', `asynchronous call failed: ${JSON.stringify(value)}`);
}
