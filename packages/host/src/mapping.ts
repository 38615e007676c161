import { MAP_SHARED, PROT_READ, PROT_WRITE } from './constants.js';
import { HostError, syscallError } from './errors.js';
import { errno, koffi, libc } from './libc.js';

const MAP_FAILED = 0xffffffffffffffffn;

/**
 * A shared mapping of a file descriptor, exposed as an ArrayBuffer (koffi.view). The buffer is a
 * plain ArrayBuffer, not a SharedArrayBuffer: Atomics load/store work on it, `Atomics.wait` does
 * not, and `postMessage` copies it. To share with a worker, send the fd and map it there.
 *
 * After `unmap()` the buffer must not be touched: the memory is gone. Callers that hand the
 * buffer to a GuestMemory must drop that GuestMemory first (HOSTILE-INPUTS H8).
 */
export class Mapping {
  readonly fd: number;
  readonly length: number;
  readonly offset: number;
  /** The mapped bytes. Invalid after {@link unmap}. */
  readonly buffer: ArrayBuffer;
  private pointer: unknown;

  private constructor(fd: number, length: number, offset: number, pointer: unknown) {
    this.fd = fd;
    this.length = length;
    this.offset = offset;
    this.pointer = pointer;
    this.buffer = koffi.view(pointer, length);
  }

  /** mmap(fd, length, offset), shared, read-write unless `readOnly`. */
  static map(fd: number, length: number, options: { offset?: number; readOnly?: boolean } = {}): Mapping {
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(length) || length <= 0) throw new HostError('INVALID_ARGUMENT', `mapping length must be positive, got ${length}`, { fd });
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 4096 !== 0) {
      throw new HostError('INVALID_ARGUMENT', `mapping offset must be a non-negative multiple of 4096, got ${offset}`, { fd });
    }
    const prot = options.readOnly ? PROT_READ : PROT_READ | PROT_WRITE;
    const pointer = libc().mmap(null, length, prot, MAP_SHARED, fd, offset);
    if (pointer === null || koffi.address(pointer) === MAP_FAILED) throw syscallError('mmap', errno(), { fd });
    return new Mapping(fd, length, offset, pointer);
  }

  /** The mapping's address in this process. */
  get address(): bigint {
    if (this.pointer === undefined) throw new HostError('CLOSED', 'mapping was unmapped', { fd: this.fd });
    return koffi.address(this.pointer);
  }

  get mapped(): boolean {
    return this.pointer !== undefined;
  }

  /** munmap. Idempotent. */
  unmap(): void {
    if (this.pointer === undefined) return;
    const pointer = this.pointer;
    this.pointer = undefined;
    if (libc().munmap(pointer, this.length) !== 0) throw syscallError('munmap', errno(), { fd: this.fd });
  }
}
