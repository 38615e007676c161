/**
 * The raw format: the virtual disk is the file, byte for byte.
 */
import type { BlockDriver, BlockDriverInfo, BlockFile, BlockStatus } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { checkOpen, checkRequest, checkWritable } from '../request-check.js';

/** Options of {@link RawDriver.open}. */
export interface RawOpenOptions {
  readonly readOnly?: boolean;
}

const ZERO_CHUNK = 1024 * 1024;

/**
 * A raw image over any {@link BlockFile}. Thin: every request goes straight to the file.
 *
 * @example
 * const disk = RawDriver.open(new MemoryFile({ data: new Uint8Array(4096) }));
 * await disk.write(0, new Uint8Array([1]));
 */
export class RawDriver implements BlockDriver {
  readonly specificationVersion = 'v1' as const;
  readonly requestAlignment = 1;
  readonly readOnly: boolean;
  readonly file: BlockFile;
  #closed = false;
  #zeroes: Uint8Array | undefined;

  private constructor(file: BlockFile, readOnly: boolean) {
    this.file = file;
    this.readOnly = readOnly;
  }

  static open(file: BlockFile, options: RawOpenOptions = {}): RawDriver {
    return new RawDriver(file, options.readOnly === true || file.readOnly);
  }

  get length(): number {
    return this.file.length;
  }

  async read(offset: number, buffer: Uint8Array): Promise<void> {
    checkOpen(this.#closed, 'read');
    checkRequest('read', offset, buffer.length, this.file.length, 1);
    await this.file.read(offset, buffer);
  }

  async write(offset: number, buffer: Uint8Array): Promise<void> {
    checkOpen(this.#closed, 'write');
    checkWritable(this.readOnly, 'write');
    checkRequest('write', offset, buffer.length, this.file.length, 1);
    await this.file.write(offset, buffer);
  }

  async flush(): Promise<void> {
    checkOpen(this.#closed, 'flush');
    if (!this.readOnly) await this.file.flush();
  }

  /** Punches a hole when the file can; otherwise does nothing (discarded contents are unspecified). */
  async discard(offset: number, length: number): Promise<void> {
    checkOpen(this.#closed, 'discard');
    checkWritable(this.readOnly, 'discard');
    checkRequest('discard', offset, length, this.file.length, 1);
    if (length > 0) await this.file.discard?.(offset, length);
  }

  async writeZeroes(offset: number, length: number, options: { mayUnmap?: boolean } = {}): Promise<void> {
    checkOpen(this.#closed, 'writeZeroes');
    checkWritable(this.readOnly, 'writeZeroes');
    checkRequest('writeZeroes', offset, length, this.file.length, 1);
    if (length === 0) return;
    if (options.mayUnmap === true && this.file.discard !== undefined) {
      await this.file.discard(offset, length);
      return;
    }
    if (this.file.writeZeroes !== undefined) {
      await this.file.writeZeroes(offset, length);
      return;
    }
    await writeZeroChunks(this.file, offset, length, (this.#zeroes ??= new Uint8Array(ZERO_CHUNK)));
  }

  /** Grows or shrinks the file. */
  async resize(length: number): Promise<void> {
    checkOpen(this.#closed, 'resize');
    checkWritable(this.readOnly, 'resize');
    if (!Number.isSafeInteger(length) || length < 0) throw new BlockError('INVALID_ARGUMENT', `bad size ${length}`, { op: 'resize' });
    await this.file.truncate(length);
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    checkOpen(this.#closed, 'blockStatus');
    checkRequest('blockStatus', offset, length, this.file.length, 1);
    if (this.file.isAllocated !== undefined) {
      const a = await this.file.isAllocated(offset, length);
      return a.allocated
        ? { length: Math.min(a.length, length), data: true, zero: false, depth: 0, offset }
        : { length: Math.min(a.length, length), data: false, zero: true, depth: 0, offset };
    }
    return { length, data: true, zero: false, depth: 0, offset };
  }

  async info(): Promise<BlockDriverInfo> {
    checkOpen(this.#closed, 'info');
    const actualSize = (await this.file.allocatedSize?.()) ?? this.file.length;
    return { format: 'raw', virtualSize: this.file.length, actualSize };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.file.close();
  }
}

/** Writes `length` zero bytes at `offset` in chunks of `zeroes`. */
export async function writeZeroChunks(file: BlockFile, offset: number, length: number, zeroes: Uint8Array): Promise<void> {
  for (let at = offset; at < offset + length; at += zeroes.length) {
    await file.write(at, zeroes.subarray(0, Math.min(zeroes.length, offset + length - at)));
  }
}

/** Options of {@link createRaw}. */
export interface RawCreateOptions {
  readonly size: number;
  /** `off` (sparse), `falloc` (the file's `allocate`, else zeroes written) or `full` (zeroes written). */
  readonly preallocation?: 'off' | 'falloc' | 'full';
}

/** Makes `file` a raw image of `size` bytes (truncating it first). */
export async function createRaw(file: BlockFile, options: RawCreateOptions): Promise<void> {
  const { size } = options;
  if (!Number.isSafeInteger(size) || size < 0) throw new BlockError('INVALID_ARGUMENT', `bad size ${size}`, { op: 'create' });
  const mode = options.preallocation ?? 'off';
  if ((mode as string) === 'metadata') {
    throw new BlockError('INVALID_ARGUMENT', "raw images do not support preallocation 'metadata'", { op: 'create' });
  }
  await file.truncate(0);
  if (mode === 'off') await file.truncate(size);
  else if (mode === 'falloc' && file.allocate !== undefined) {
    await file.truncate(size);
    if (size > 0) await file.allocate(0, size);
  } else await writeZeroChunks(file, 0, size, new Uint8Array(Math.min(ZERO_CHUNK, Math.max(size, 1))));
  await file.flush();
}
