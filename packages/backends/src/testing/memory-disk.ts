import { BlockError, type BlockDriver, type BlockDriverInfo } from '@virtio-ts/block';

/** Options of {@link MemoryDisk}. */
export interface MemoryDiskOptions {
  readonly size: number;
  readonly requestAlignment?: number;
  readonly readOnly?: boolean;
  /** Implement `discard` (zeroes the range). Default true. */
  readonly discard?: boolean;
  /** Implement `writeZeroes`. Default true. */
  readonly writeZeroes?: boolean;
  /**
   * When set, every operation waits for `release()` of its ticket: a test decides the
   * completion order (out-of-order completion).
   */
  readonly manual?: boolean;
}

/** One held operation of a manual {@link MemoryDisk}. */
export interface HeldOperation {
  readonly op: 'read' | 'write' | 'flush' | 'discard' | 'writeZeroes';
  readonly offset: number;
  readonly length: number;
  /** Lets the operation run (and settle). */
  release(): void;
  /** Makes the operation fail with BlockError IO. */
  fail(): void;
}

/**
 * A test BlockDriver over a Uint8Array: checks alignment and bounds as the contract says, counts
 * calls, and in `manual` mode holds every operation until the test releases it.
 */
export class MemoryDisk implements BlockDriver {
  readonly specificationVersion = 'v1' as const;
  readonly bytes: Uint8Array;
  readonly requestAlignment: number;
  readonly readOnly: boolean;
  readonly held: HeldOperation[] = [];
  readonly calls = { read: 0, write: 0, flush: 0, discard: 0, writeZeroes: 0 };
  /** Distinct buffers `read` was given, to check zero-copy (views over guest memory). */
  readonly readBuffers: Uint8Array[] = [];
  discard?: (offset: number, length: number) => Promise<void>;
  writeZeroes?: (offset: number, length: number, options?: { mayUnmap?: boolean }) => Promise<void>;
  private readonly manual: boolean;
  private sizeBytes: number;

  constructor(options: MemoryDiskOptions) {
    this.sizeBytes = options.size;
    this.bytes = new Uint8Array(options.size);
    this.requestAlignment = options.requestAlignment ?? 512;
    this.readOnly = options.readOnly ?? false;
    this.manual = options.manual ?? false;
    if (options.discard ?? true) {
      this.discard = (offset, length) =>
        this.run('discard', offset, length, () => {
          this.calls.discard++;
          this.bytes.fill(0, offset, offset + length);
        });
    }
    if (options.writeZeroes ?? true) {
      this.writeZeroes = (offset, length) =>
        this.run('writeZeroes', offset, length, () => {
          this.calls.writeZeroes++;
          this.bytes.fill(0, offset, offset + length);
        });
    }
  }

  get length(): number {
    return this.sizeBytes;
  }

  /** Changes the reported size (the bytes array keeps its length; used for capacity-change tests). */
  setLength(length: number): void {
    this.sizeBytes = length;
  }

  read(offset: number, buffer: Uint8Array): Promise<void> {
    return this.run('read', offset, buffer.length, () => {
      this.calls.read++;
      this.readBuffers.push(buffer);
      buffer.set(this.bytes.subarray(offset, offset + buffer.length));
    });
  }

  write(offset: number, buffer: Uint8Array): Promise<void> {
    if (this.readOnly) return Promise.reject(new BlockError('READ_ONLY', 'read-only disk', { op: 'write' }));
    // Copy now: the caller's buffer (guest memory) may change after submission.
    const copy = buffer.slice();
    return this.run('write', offset, buffer.length, () => {
      this.calls.write++;
      this.bytes.set(copy, offset);
    });
  }

  flush(): Promise<void> {
    return this.run('flush', 0, 0, () => {
      this.calls.flush++;
    });
  }

  info(): Promise<BlockDriverInfo> {
    return Promise.resolve({ format: 'raw', virtualSize: this.sizeBytes });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private run(op: HeldOperation['op'], offset: number, length: number, action: () => void): Promise<void> {
    if (op !== 'flush') {
      if (offset % this.requestAlignment !== 0 || length % this.requestAlignment !== 0) {
        return Promise.reject(new BlockError('INVALID_ARGUMENT', 'unaligned request', { op, offset, length }));
      }
      if (offset + length > this.sizeBytes) return Promise.reject(new BlockError('INVALID_ARGUMENT', 'past the end', { op, offset, length }));
    }
    if (!this.manual) {
      action();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.held.push({
        op,
        offset,
        length,
        release: () => {
          action();
          resolve();
        },
        fail: () => reject(new BlockError('IO', 'injected failure', { op, offset, length })),
      });
    });
  }
}
