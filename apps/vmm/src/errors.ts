const MARKER = Symbol.for('virtio-ts.error');

/** Stable codes of {@link VmmError}; each is a distinct fault. */
export type VmmErrorCode =
  /** The VM config (JSON file or flags) is invalid; the message names the field. */
  | 'INVALID_CONFIG'
  /** A `key=value,...` option list that cannot be parsed (an empty key, a bad size). */
  | 'INVALID_OPTION'
  /** A disk image could not be opened or created. */
  | 'IMAGE'
  /** The guest hit an error it could not recover from (a driver or workload failure). */
  | 'GUEST_ERROR'
  /** A device reported DEVICE_NEEDS_RESET or failed. */
  | 'DEVICE_ERROR'
  /** `verify` read back data that differs from what it wrote. */
  | 'VERIFY_MISMATCH'
  /** The guest accessed an address no device or RAM claims (an unhandled exit). */
  | 'UNHANDLED_EXIT'
  /** A vCPU worker thread failed or exited unexpectedly. */
  | 'VCPU_FAILED'
  /** The run did not finish in its time limit. */
  | 'TIMEOUT'
  /** `--engine qemu`: qemu-system-x86_64 is not installed or could not be started. */
  | 'QEMU_MISSING'
  /** `--engine qemu`: the Linux guest ended without printing its `VT-EXIT=<status>` line. */
  | 'NO_GUEST_STATUS'
  /** The run was stopped by SIGINT or SIGTERM (devices were shut down and images flushed). */
  | 'INTERRUPTED'
  /** Every other failure of the VMM itself. */
  | 'INTERNAL';

export interface VmmErrorContext {
  /** Dotted path of a config field (`devices.0.format`). */
  readonly field?: string;
  readonly device?: string;
  readonly vcpu?: number;
  readonly path?: string;
  readonly offset?: number;
}

/**
 * The one error class of `@virtio-ts/vmm`. Thrown to the CLI, which prints
 * `vmm: <message> [CODE]` and exits non-zero; never a stack trace.
 */
export class VmmError extends Error {
  readonly code: VmmErrorCode;
  readonly context: VmmErrorContext;
  readonly [MARKER] = true;

  constructor(code: VmmErrorCode, message: string, context: VmmErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'VmmError';
    this.code = code;
    this.context = context;
  }

  /** True for a VmmError from any copy of this package. */
  static isInstance(value: unknown): value is VmmError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'VmmError'
    );
  }
}

function formatContext(context: VmmErrorContext): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(context)) {
    if (value === undefined || key === 'field') continue;
    parts.push(`${key}=${String(value)}`);
  }
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}

/**
 * The one line the CLI prints for any error: the message of a virtio-ts error (which already
 * carries its code), or the message of anything else with the INTERNAL code.
 */
export function describeError(error: unknown): string {
  if (typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true) {
    return (error as Error).message;
  }
  if (error instanceof Error) return `${error.message} [INTERNAL]`;
  return `${String(error)} [INTERNAL]`;
}
