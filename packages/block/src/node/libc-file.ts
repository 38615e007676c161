/**
 * The few libc calls Node's fs does not offer, bound through koffi (from `@virtio-ts/host`) on
 * first use: lseek with SEEK_DATA/SEEK_HOLE, fallocate, anonymous mmap for page-aligned buffers,
 * and a zero-length memmove that reveals a typed array's address (for the O_DIRECT alignment
 * check). Calls that may sleep in the kernel (lseek on a fragmented file, fallocate) run on the
 * libuv thread pool through koffi's `.async`; koffi hands the worker thread's errno back to the
 * callback.
 */
import { koffi } from '@virtio-ts/host';

/** lseek whence values (linux/fs.h). */
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
/** fallocate modes (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** errno values the adapter reacts to. */
export const ENXIO = 6;
export const EINVAL = 22;
export const ENOSPC = 28;
export const ENOSYS = 38;
export const EOPNOTSUPP = 95;
export const EDQUOT = 122;

type Callback = (error: unknown, result: number | bigint) => void;
interface AsyncFn {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}

interface FileLibc {
  lseek: AsyncFn;
  fallocate: AsyncFn;
  mmap: AsyncFn;
  munmap: AsyncFn;
  memmove: AsyncFn;
}

let bound: FileLibc | undefined;

function libc(): FileLibc {
  if (bound !== undefined) return bound;
  const lib = koffi.load('libc.so.6');
  const f = (signature: string): AsyncFn => lib.func(signature) as AsyncFn;
  bound = {
    lseek: f('int64_t lseek(int fd, int64_t offset, int whence)'),
    fallocate: f('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
    mmap: f('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: f('int munmap(void *addr, size_t length)'),
    memmove: f('void *memmove(void *dst, const void *src, size_t n)'),
  };
  return bound;
}

/** A failed libc call: the errno and the call's name. */
export class LibcError extends Error {
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`${call} failed with errno ${errno}`);
    this.name = 'LibcError';
    this.errno = errno;
  }
}

function call(name: keyof FileLibc, args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const cb: Callback = (error, result) => {
      if (error !== null && error !== undefined) {
        reject(error instanceof Error ? error : new Error(`${name} failed`));
        return;
      }
      const value = Number(result);
      if (value < 0) reject(new LibcError(name, koffi.errno()));
      else resolve(value);
    };
    libc()[name].async(...args, cb);
  });
}

/** lseek(fd, offset, whence) on the thread pool; rejects with LibcError (ENXIO past the data). */
export function lseekAsync(fd: number, offset: number, whence: number): Promise<number> {
  return call('lseek', [fd, offset, whence]);
}

/** fallocate(fd, mode, offset, length) on the thread pool. */
export function fallocateAsync(fd: number, mode: number, offset: number, length: number): Promise<void> {
  return call('fallocate', [fd, mode, offset, length]).then(() => undefined);
}

const PROT_READ_WRITE = 0x3;
const MAP_PRIVATE_ANONYMOUS = 0x22;
const MAP_FAILED = 0xffffffffffffffffn;

/** A page-aligned anonymous mapping exposed as an ArrayBuffer; `free` unmaps it. */
export interface AlignedRegion {
  readonly buffer: ArrayBuffer;
  free(): void;
}

/** mmap(MAP_PRIVATE|MAP_ANONYMOUS) of `length` bytes: page-aligned, zero-filled. */
export function mapAnonymous(length: number): AlignedRegion {
  const fns = libc();
  const pointer = fns.mmap(null, length, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0);
  if (pointer === null || koffi.address(pointer) === MAP_FAILED) throw new LibcError('mmap', koffi.errno());
  const buffer = koffi.view(pointer, length);
  let mapped = true;
  return {
    buffer,
    free: () => {
      if (!mapped) return;
      mapped = false;
      fns.munmap(pointer, length);
    },
  };
}

/** The address of `view`'s first byte modulo `alignment` (a power of two). */
export function addressModulo(view: Uint8Array, alignment: number): number {
  const pointer = libc().memmove(view, view, 0);
  return Number(koffi.address(pointer) % BigInt(alignment));
}
