const MARKER = Symbol.for('virtio-ts.error');

/** Stable codes of {@link VimgError}; each is a distinct fault. */
export type VimgErrorCode =
  /** The command line is wrong: unknown option, missing argument, bad value. */
  | 'USAGE'
  /** A `-o` option list names an unknown option or a bad value. */
  | 'INVALID_OPTION'
  /** A size is malformed, negative where it must not be, or too large. */
  | 'INVALID_SIZE'
  /** The subcommand or feature is not implemented for this format (named in the message). */
  | 'UNSUPPORTED'
  /** A backing file the image names was not followed (see the backing-file rule in README.md). */
  | 'BACKING_REFUSED'
  /** The image could not be opened or read (the cause carries the BlockError or errno). */
  | 'OPEN_FAILED'
  /** A snapshot with the given id or name does not exist. */
  | 'SNAPSHOT_NOT_FOUND'
  /** Two images cannot be compared or converted (e.g. different sizes in strict mode). */
  | 'MISMATCH'
  /** Host I/O failed. */
  | 'IO';

export interface VimgErrorContext {
  readonly path?: string;
  readonly option?: string;
  readonly command?: string;
}

/**
 * The one error class of `@virtio-ts/vimg`. `main` prints `vimg: <message>` (the message ends
 * with the code in brackets) and never a stack.
 */
export class VimgError extends Error {
  readonly code: VimgErrorCode;
  readonly context: VimgErrorContext;
  readonly [MARKER] = true;

  constructor(code: VimgErrorCode, message: string, context: VimgErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]`, options);
    this.name = 'VimgError';
    this.code = code;
    this.context = context;
  }

  /** True for a VimgError from any copy of this package. */
  static isInstance(value: unknown): value is VimgError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'VimgError'
    );
  }
}
