/**
 * The Node host adapter: a {@link BlockFile} over a `node:fs/promises` FileHandle.
 *
 * - Errors: ENOSPC and EDQUOT become BlockError NO_SPACE; every other failure is IO with the
 *   errno in `cause`.
 * - Sparse files: Node exposes neither SEEK_DATA/SEEK_HOLE nor hole punching, so `isAllocated`
 *   and `discard` are not provided (callers treat everything as allocated and discard as a no-op);
 *   `allocatedSize` comes from `st_blocks`.
 * - O_DIRECT is not offered: Node cannot allocate the aligned buffers it needs.
 * - `flush` is `fdatasync`.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';

/** Options of {@link NodeFile.open}. */
export interface NodeFileOptions {
  readonly readOnly?: boolean;
  /** Create the file if missing (truncating nothing). Default false. */
  readonly create?: boolean;
}

function hostError(error: unknown, op: string, path: string, offset?: number): BlockError {
  if (BlockError.isInstance(error)) return error;
  const code = (error as { code?: unknown }).code;
  const context = offset === undefined ? { op, path } : { op, path, offset };
  if (code === 'ENOSPC' || code === 'EDQUOT') return new BlockError('NO_SPACE', 'no space left on the host', context, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new BlockError('IO', `host I/O failed: ${message}`, context, { cause: error });
}

export class NodeFile implements BlockFile {
  readonly path: string;
  readonly readOnly: boolean;
  readonly #handle: FileHandle;
  #length: number;
  #closed = false;

  private constructor(path: string, handle: FileHandle, length: number, readOnly: boolean) {
    this.path = path;
    this.#handle = handle;
    this.#length = length;
    this.readOnly = readOnly;
  }

  /** Opens `path` (read-write unless `readOnly`). */
  static async open(path: string, options: NodeFileOptions = {}): Promise<NodeFile> {
    const readOnly = options.readOnly === true;
    try {
      const handle = await open(path, readOnly ? 'r' : options.create === true ? 'a+' : 'r+');
      // 'a+' appends on Linux regardless of position: reopen r+ once the file exists.
      if (!readOnly && options.create === true) {
        await handle.close();
        const rw = await open(path, 'r+');
        const stat = await rw.stat();
        return new NodeFile(path, rw, stat.size, false);
      }
      const stat = await handle.stat();
      if (!stat.isFile() && !stat.isBlockDevice()) {
        await handle.close();
        throw new BlockError('INVALID_ARGUMENT', 'not a regular file or block device', { op: 'open', path });
      }
      return new NodeFile(path, handle, stat.size, readOnly);
    } catch (error) {
      throw hostError(error, 'open', path);
    }
  }

  get length(): number {
    return this.#length;
  }

  async read(offset: number, buffer: Uint8Array): Promise<void> {
    this.#check('read');
    let done = 0;
    try {
      while (done < buffer.length) {
        const { bytesRead } = await this.#handle.read(buffer, done, buffer.length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (error) {
      throw hostError(error, 'read', this.path, offset);
    }
    if (done < buffer.length) buffer.fill(0, done);
  }

  async write(offset: number, buffer: Uint8Array): Promise<void> {
    this.#check('write');
    if (this.readOnly) throw new BlockError('READ_ONLY', 'file opened read-only', { op: 'write', path: this.path });
    let done = 0;
    try {
      while (done < buffer.length) {
        const { bytesWritten } = await this.#handle.write(buffer, done, buffer.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (error) {
      throw hostError(error, 'write', this.path, offset);
    }
    if (offset + buffer.length > this.#length) this.#length = offset + buffer.length;
  }

  async flush(): Promise<void> {
    this.#check('flush');
    if (this.readOnly) return;
    try {
      await this.#handle.datasync();
    } catch (error) {
      throw hostError(error, 'flush', this.path);
    }
  }

  async truncate(length: number): Promise<void> {
    this.#check('truncate');
    if (this.readOnly) throw new BlockError('READ_ONLY', 'file opened read-only', { op: 'truncate', path: this.path });
    try {
      await this.#handle.truncate(length);
    } catch (error) {
      throw hostError(error, 'truncate', this.path);
    }
    this.#length = length;
  }

  async allocatedSize(): Promise<number> {
    this.#check('stat');
    try {
      const stat = await this.#handle.stat();
      return stat.blocks * 512;
    } catch (error) {
      throw hostError(error, 'stat', this.path);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#handle.close();
    } catch (error) {
      throw hostError(error, 'close', this.path);
    }
  }

  #check(op: string): void {
    if (this.#closed) throw new BlockError('CLOSED', 'file is closed', { op, path: this.path });
  }
}
