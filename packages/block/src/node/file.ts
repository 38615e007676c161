/**
 * The Node host adapter: a {@link BlockFile} over a host file descriptor.
 *
 * - I/O: positional reads and writes through `node:fs` on the libuv thread pool (never on the
 *   event loop), any number in flight.
 * - Cache modes like qemu-img's `-t` ({@link CacheMode}): `none` and `directsync` open with
 *   O_DIRECT. Requests are then aligned to the file system's logical block size
 *   ({@link NodeFile.alignment}): an aligned request into page-aligned memory goes straight to
 *   the kernel, anything else is bounced through a page-aligned buffer, writes by
 *   read-modify-write of the covering blocks, ordered against overlapping writes. A file system
 *   that refuses O_DIRECT is an UNSUPPORTED error ("does not support O_DIRECT", as qemu-img says)
 *   unless `directFallback: 'buffered'` is given.
 * - Sparse files: `isAllocated` uses lseek SEEK_DATA/SEEK_HOLE; `discard` punches a hole
 *   (fallocate PUNCH_HOLE|KEEP_SIZE); `writeZeroes` uses FALLOC_FL_ZERO_RANGE; `allocate` is
 *   fallocate(0) (preallocation=falloc). Where the file system lacks one of them the adapter
 *   writes zeroes instead, so the result reads the same.
 * - Errors: ENOSPC and EDQUOT become BlockError NO_SPACE; every other failure is IO with the
 *   errno in `cause`.
 */
import * as fs from 'node:fs';
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { AlignedPool } from './aligned-pool.js';
import { isDirect, isWriteThrough, type CacheMode } from './cache-mode.js';
import {
  EDQUOT,
  EINVAL,
  ENOSPC,
  ENOSYS,
  ENXIO,
  EOPNOTSUPP,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  LibcError,
  SEEK_DATA,
  SEEK_HOLE,
  addressModulo,
  fallocateAsync,
  lseekAsync,
} from './libc-file.js';
import { logicalBlockSize } from './logical-block-size.js';
import { RangeLock } from './range-lock.js';

/** Options of {@link NodeFile.open}. */
export interface NodeFileOptions {
  readonly readOnly?: boolean;
  /** Create the file if missing (truncating nothing). Default false. */
  readonly create?: boolean;
  /** Host cache mode, qemu-img's `-t` (default `writeback`). */
  readonly cache?: CacheMode;
  /**
   * What to do when `cache` asks for O_DIRECT and the file system refuses it: `'error'` (the
   * default, like qemu-img) or `'buffered'` (open without O_DIRECT; {@link NodeFile.direct} says so).
   */
  readonly directFallback?: 'error' | 'buffered';
}

const ZERO_CHUNK = 1024 * 1024;

function errnoOf(error: unknown): number | undefined {
  if (error instanceof LibcError) return error.errno;
  const errno = (error as { errno?: unknown }).errno;
  return typeof errno === 'number' ? Math.abs(errno) : undefined;
}

function hostError(error: unknown, op: string, path: string, offset?: number): BlockError {
  if (BlockError.isInstance(error)) return error;
  const errno = errnoOf(error);
  const code = (error as { code?: unknown }).code;
  const context = offset === undefined ? { op, path } : { op, path, offset };
  if (code === 'ENOSPC' || code === 'EDQUOT' || errno === ENOSPC || errno === EDQUOT) {
    return new BlockError('NO_SPACE', 'no space left on the host', context, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new BlockError('IO', `host I/O failed: ${message}`, context, { cause: error });
}

function fsOpen(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, 0o644, (error, fd) => (error ? reject(error) : resolve(fd)));
  });
}

function fsStat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, (error, stat) => (error ? reject(error) : resolve(stat)));
  });
}

function fsClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (error) => (error ? reject(error) : resolve()));
  });
}

function pread(fd: number, buffer: Uint8Array, start: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buffer, start, length, position, (error, n) => (error ? reject(error) : resolve(n)));
  });
}

function pwrite(fd: number, buffer: Uint8Array, start: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buffer, start, length, position, (error, n) => (error ? reject(error) : resolve(n)));
  });
}

/**
 * A host file as a {@link BlockFile}.
 *
 * @example
 * const file = await NodeFile.open('disk.raw', { cache: 'none' });
 * const disk = RawDriver.open(file);
 * await disk.write(0, new Uint8Array(4096).fill(1)); // straight to the device, no page cache
 * await disk.close();
 */
export class NodeFile implements BlockFile {
  readonly path: string;
  readonly readOnly: boolean;
  /** The cache mode the file was opened with. */
  readonly cache: CacheMode;
  /** Whether the file is open with O_DIRECT. */
  readonly direct: boolean;
  /** Alignment of requests the kernel accepts (1 buffered; the logical block size with O_DIRECT). */
  readonly alignment: number;
  /** The host file descriptor (for diagnostics; do not close it). */
  readonly fd: number;
  readonly #pool: AlignedPool | undefined;
  readonly #lock = new RangeLock();
  #length: number;
  #closed = false;
  #sparseUnsupported = false;
  #zeroRangeUnsupported = false;
  #zeroes: Uint8Array | undefined;

  private constructor(path: string, fd: number, length: number, readOnly: boolean, cache: CacheMode, direct: boolean, alignment: number) {
    this.path = path;
    this.fd = fd;
    this.#length = length;
    this.readOnly = readOnly;
    this.cache = cache;
    this.direct = direct;
    this.alignment = alignment;
    this.#pool = direct ? new AlignedPool() : undefined;
  }

  /** Opens `path` (read-write unless `readOnly`) with the given cache mode. */
  static async open(path: string, options: NodeFileOptions = {}): Promise<NodeFile> {
    const readOnly = options.readOnly === true;
    const cache = options.cache ?? 'writeback';
    const { constants } = fs;
    let flags = (readOnly ? constants.O_RDONLY : constants.O_RDWR) | (options.create === true && !readOnly ? constants.O_CREAT : 0);
    if (isWriteThrough(cache) && !readOnly) flags |= constants.O_DSYNC;
    let direct = isDirect(cache);
    let fd: number;
    try {
      try {
        fd = await fsOpen(path, direct ? flags | constants.O_DIRECT : flags);
      } catch (error) {
        if (!direct || (error as { code?: unknown }).code !== 'EINVAL') throw error;
        if (options.directFallback !== 'buffered') {
          throw new BlockError('UNSUPPORTED', `cannot open with cache=${cache}: the file system does not support O_DIRECT`, { op: 'open', path }, { cause: error });
        }
        direct = false;
        fd = await fsOpen(path, flags);
      }
    } catch (error) {
      throw hostError(error, 'open', path);
    }
    try {
      const stat = await fsStat(fd);
      if (!stat.isFile() && !stat.isBlockDevice()) {
        throw new BlockError('INVALID_ARGUMENT', 'not a regular file or block device', { op: 'open', path });
      }
      const alignment = direct ? await logicalBlockSize(stat) : 1;
      let length = stat.size;
      if (stat.isBlockDevice()) length = await blockDeviceSize(fd);
      return new NodeFile(path, fd, length, readOnly, cache, direct, alignment);
    } catch (error) {
      await fsClose(fd).catch(() => undefined);
      throw hostError(error, 'open', path);
    }
  }

  get length(): number {
    return this.#length;
  }

  async read(offset: number, buffer: Uint8Array): Promise<void> {
    this.#check('read');
    if (buffer.length === 0) return;
    try {
      if (!this.direct) {
        const done = await this.#preadAll(buffer, offset, false);
        if (done < buffer.length) buffer.fill(0, done);
        return;
      }
      const a = this.alignment;
      const start = offset - (offset % a);
      const end = Math.ceil((offset + buffer.length) / a) * a;
      if (start === offset && end === offset + buffer.length && this.#memoryAligned(buffer)) {
        const done = await this.#preadAll(buffer, offset, true);
        if (done < buffer.length) buffer.fill(0, done);
        return;
      }
      const lease = this.#pool!.take(end - start);
      try {
        const done = await this.#preadAll(lease.bytes, start, true);
        if (done < lease.bytes.length) lease.bytes.fill(0, done);
        buffer.set(lease.bytes.subarray(offset - start, offset - start + buffer.length));
      } finally {
        lease.release();
      }
    } catch (error) {
      throw hostError(error, 'read', this.path, offset);
    }
  }

  async write(offset: number, buffer: Uint8Array): Promise<void> {
    this.#check('write');
    this.#checkWritable('write');
    if (buffer.length === 0) return;
    try {
      if (!this.direct) {
        await this.#pwriteAll(buffer, offset);
        if (offset + buffer.length > this.#length) this.#length = offset + buffer.length;
        return;
      }
      await this.#directWrite(offset, buffer);
    } catch (error) {
      throw hostError(error, 'write', this.path, offset);
    }
  }

  async flush(): Promise<void> {
    this.#check('flush');
    if (this.readOnly || this.cache === 'unsafe') return;
    try {
      await new Promise<void>((resolve, reject) => {
        fs.fdatasync(this.fd, (error) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      throw hostError(error, 'flush', this.path);
    }
  }

  async truncate(length: number): Promise<void> {
    this.#check('truncate');
    this.#checkWritable('truncate');
    try {
      await this.#ftruncate(length);
    } catch (error) {
      throw hostError(error, 'truncate', this.path);
    }
    this.#length = length;
  }

  /**
   * Deallocates the range (fallocate PUNCH_HOLE|KEEP_SIZE); it then reads as zeroes. Where the
   * file system cannot punch holes, zeroes are written instead.
   */
  async discard(offset: number, length: number): Promise<void> {
    this.#check('discard');
    this.#checkWritable('discard');
    const end = Math.min(offset + length, this.#length);
    if (end <= offset) return;
    try {
      if (!this.#sparseUnsupported) {
        const release = await this.#lock.acquire(offset, end);
        try {
          await fallocateAsync(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, end - offset);
          return;
        } catch (error) {
          if (!isUnsupported(error)) throw error;
          this.#sparseUnsupported = true;
        } finally {
          release();
        }
      }
      await this.#writeZeroChunks(offset, end - offset);
    } catch (error) {
      throw hostError(error, 'discard', this.path, offset);
    }
  }

  /**
   * The range reads as zeroes afterwards and stays allocated (FALLOC_FL_ZERO_RANGE; zeroes are
   * written where the file system lacks it). Grows the file when the range passes its end.
   */
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.#check('writeZeroes');
    this.#checkWritable('writeZeroes');
    if (length <= 0) return;
    try {
      if (!this.#zeroRangeUnsupported) {
        const release = await this.#lock.acquire(offset, offset + length);
        try {
          await fallocateAsync(this.fd, FALLOC_FL_ZERO_RANGE, offset, length);
          if (offset + length > this.#length) this.#length = offset + length;
          return;
        } catch (error) {
          if (!isUnsupported(error)) throw error;
          this.#zeroRangeUnsupported = true;
        } finally {
          release();
        }
      }
      await this.#writeZeroChunks(offset, length);
    } catch (error) {
      throw hostError(error, 'writeZeroes', this.path, offset);
    }
  }

  /**
   * Reserves host blocks for the range (fallocate mode 0, `preallocation=falloc`), growing the
   * file when the range passes its end; where unsupported, writes zeroes (`full`).
   */
  async allocate(offset: number, length: number): Promise<void> {
    this.#check('allocate');
    this.#checkWritable('allocate');
    if (length <= 0) return;
    try {
      try {
        await fallocateAsync(this.fd, 0, offset, length);
        if (offset + length > this.#length) this.#length = offset + length;
        return;
      } catch (error) {
        if (!isUnsupported(error)) throw error;
      }
      await this.#writeZeroChunks(offset, length);
    } catch (error) {
      throw hostError(error, 'allocate', this.path, offset);
    }
  }

  /**
   * Whether the bytes at `offset` are allocated on the host, and for how many bytes (at most
   * `length`) that stays true: lseek SEEK_DATA/SEEK_HOLE, as qemu-img does for raw files. File
   * systems without them report everything allocated.
   */
  async isAllocated(offset: number, length: number): Promise<{ allocated: boolean; length: number }> {
    this.#check('blockStatus');
    if (this.#sparseUnsupported) return { allocated: true, length };
    try {
      let data: number;
      try {
        data = await lseekAsync(this.fd, offset, SEEK_DATA);
      } catch (error) {
        if (errnoOf(error) === ENXIO) return { allocated: false, length };
        throw error;
      }
      if (data > offset) return { allocated: false, length: Math.min(length, data - offset) };
      const hole = await lseekAsync(this.fd, offset, SEEK_HOLE);
      return { allocated: true, length: Math.min(length, Math.max(hole - offset, 1)) };
    } catch (error) {
      if (isUnsupported(error)) return { allocated: true, length };
      throw hostError(error, 'blockStatus', this.path, offset);
    }
  }

  async allocatedSize(): Promise<number> {
    this.#check('stat');
    try {
      const stat = await fsStat(this.fd);
      return stat.blocks * 512;
    } catch (error) {
      throw hostError(error, 'stat', this.path);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await fsClose(this.fd);
    } catch (error) {
      throw hostError(error, 'close', this.path);
    } finally {
      this.#pool?.close();
    }
  }

  /** Reads until `buffer` is full or end of file; returns the bytes read. */
  async #preadAll(buffer: Uint8Array, offset: number, direct: boolean): Promise<number> {
    let done = 0;
    while (done < buffer.length) {
      const n = await pread(this.fd, buffer, done, buffer.length - done, offset + done);
      if (n === 0) break;
      done += n;
      // A short O_DIRECT read ends at end of file; the next offset would be unaligned.
      if (direct && done < buffer.length) break;
    }
    return done;
  }

  async #pwriteAll(buffer: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    while (done < buffer.length) {
      done += await pwrite(this.fd, buffer, done, buffer.length - done, offset + done);
    }
  }

  /** O_DIRECT write: aligned requests go straight through; others read-modify-write whole blocks. */
  async #directWrite(offset: number, buffer: Uint8Array): Promise<void> {
    const a = this.alignment;
    const start = offset - (offset % a);
    const end = Math.ceil((offset + buffer.length) / a) * a;
    const logicalEnd = offset + buffer.length;
    if (logicalEnd > this.#length) this.#length = logicalEnd;
    const release = await this.#lock.acquire(start, end);
    try {
      if (start === offset && end === logicalEnd && this.#memoryAligned(buffer)) {
        await this.#pwriteAll(buffer, offset);
      } else {
        const lease = this.#pool!.take(end - start);
        try {
          const bytes = lease.bytes;
          // Only the partly written first and last blocks are read back.
          if (start < offset) await this.#readBlock(bytes, 0, start);
          if (end > logicalEnd && (end - a > start || start === offset)) await this.#readBlock(bytes, end - a - start, end - a);
          bytes.set(buffer, offset - start);
          await this.#pwriteAll(bytes, start);
        } finally {
          lease.release();
        }
      }
      // Whole blocks were written: cut the file back to its logical end.
      if (end > this.#length) await this.#ftruncate(this.#length);
    } finally {
      release();
    }
  }

  /** Reads the aligned block at `position` into `bytes` at `at` (zeroes past the end of file). */
  async #readBlock(bytes: Uint8Array, at: number, position: number): Promise<void> {
    const block = bytes.subarray(at, at + this.alignment);
    const done = await this.#preadAll(block, position, true);
    if (done < block.length) block.fill(0, done);
  }

  async #writeZeroChunks(offset: number, length: number): Promise<void> {
    const zeroes = (this.#zeroes ??= new Uint8Array(ZERO_CHUNK));
    for (let at = offset; at < offset + length; at += zeroes.length) {
      await this.write(at, zeroes.subarray(0, Math.min(zeroes.length, offset + length - at)));
    }
  }

  #memoryAligned(buffer: Uint8Array): boolean {
    return addressModulo(buffer, this.alignment) === 0;
  }

  #ftruncate(length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.ftruncate(this.fd, length, (error) => (error ? reject(error) : resolve()));
    });
  }

  #check(op: string): void {
    if (this.#closed) throw new BlockError('CLOSED', 'file is closed', { op, path: this.path });
  }

  #checkWritable(op: string): void {
    if (this.readOnly) throw new BlockError('READ_ONLY', 'file opened read-only', { op, path: this.path });
  }
}

function isUnsupported(error: unknown): boolean {
  const errno = errnoOf(error);
  return errno === EOPNOTSUPP || errno === ENOSYS || errno === EINVAL;
}

/** Size of a block device: lseek to its end (st_size is 0 for devices). */
async function blockDeviceSize(fd: number): Promise<number> {
  const SEEK_END = 2;
  return lseekAsync(fd, 0, SEEK_END);
}
