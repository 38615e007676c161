import type { BlockFile } from './block-driver.js';
import { BlockError } from './errors.js';

/** Options of {@link MemoryFile}. */
export interface MemoryFileOptions {
  /** Initial contents (copied). */
  readonly data?: Uint8Array;
  readonly readOnly?: boolean;
  /** Growth limit in bytes: writes or truncates past it fail with NO_SPACE (default 2^40). */
  readonly maxLength?: number;
}

const DEFAULT_MAX_LENGTH = 2 ** 40;

/**
 * A {@link BlockFile} in memory: a growable byte array. Pure (runs in a browser); used for tests,
 * fuzzing and scratch images. Growth doubles the backing store, so appends are amortised O(1).
 *
 * @example
 * const file = new MemoryFile();
 * await file.write(0, new Uint8Array([1, 2, 3]));
 * file.length; // 3
 */
export class MemoryFile implements BlockFile {
  #bytes: Uint8Array;
  #length: number;
  #closed = false;
  readonly readOnly: boolean;
  readonly maxLength: number;

  constructor(options: MemoryFileOptions = {}) {
    const data = options.data ?? new Uint8Array(0);
    this.#bytes = new Uint8Array(Math.max(4096, data.length));
    this.#bytes.set(data);
    this.#length = data.length;
    this.readOnly = options.readOnly ?? false;
    this.maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  }

  get length(): number {
    return this.#length;
  }

  /** A copy of the current contents (exactly `length` bytes). */
  snapshot(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }

  read(offset: number, buffer: Uint8Array): Promise<void> {
    return settle(() => this.#read(offset, buffer));
  }

  write(offset: number, buffer: Uint8Array): Promise<void> {
    return settle(() => this.#write(offset, buffer));
  }

  truncate(length: number): Promise<void> {
    return settle(() => this.#truncate(length));
  }

  discard(offset: number, length: number): Promise<void> {
    return settle(() => this.#discard(offset, length));
  }

  #read(offset: number, buffer: Uint8Array): void {
    this.#check('read', offset, buffer.length);
    const end = Math.min(this.#length, offset + buffer.length);
    if (offset < end) {
      buffer.set(this.#bytes.subarray(offset, end));
      buffer.fill(0, end - offset);
    } else {
      buffer.fill(0);
    }
  }

  #write(offset: number, buffer: Uint8Array): void {
    this.#check('write', offset, buffer.length);
    if (this.readOnly) throw new BlockError('READ_ONLY', 'memory file is read-only', { op: 'write' });
    const end = offset + buffer.length;
    this.#ensure(end, 'write');
    this.#bytes.set(buffer, offset);
    if (end > this.#length) this.#length = end;
  }

  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(new BlockError('CLOSED', 'memory file is closed', { op: 'flush' }));
    return Promise.resolve();
  }

  #truncate(length: number): void {
    this.#check('truncate', length, 0);
    if (this.readOnly) throw new BlockError('READ_ONLY', 'memory file is read-only', { op: 'truncate' });
    this.#ensure(length, 'truncate');
    if (length < this.#length) this.#bytes.fill(0, length, this.#length);
    this.#length = length;
  }

  #discard(offset: number, length: number): void {
    this.#check('discard', offset, length);
    if (this.readOnly) throw new BlockError('READ_ONLY', 'memory file is read-only', { op: 'discard' });
    const end = Math.min(this.#length, offset + length);
    if (offset < end) this.#bytes.fill(0, offset, end);
  }

  allocatedSize(): Promise<number> {
    return Promise.resolve(this.#length);
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #check(op: string, offset: number, length: number): void {
    if (this.#closed) throw new BlockError('CLOSED', 'memory file is closed', { op });
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new BlockError('INVALID_ARGUMENT', 'bad offset or length', { op, offset, length });
    }
  }

  #ensure(end: number, op: string): void {
    if (end > this.maxLength) {
      throw new BlockError('NO_SPACE', `memory file limit of ${this.maxLength} bytes reached`, { op, offset: end });
    }
    if (end <= this.#bytes.length) return;
    let capacity = this.#bytes.length;
    while (capacity < end) capacity *= 2;
    const grown = new Uint8Array(Math.min(capacity, this.maxLength));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }
}

function settle(fn: () => void): Promise<void> {
  try {
    fn();
    return Promise.resolve();
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
