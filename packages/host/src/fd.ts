import { syscallError } from './errors.js';
import { errno, libc } from './libc.js';

/** Closes `fd`; EBADF on an fd that is not open. */
export function closeFd(fd: number): void {
  if (libc().close(fd) !== 0) throw syscallError('close', errno(), { fd });
}

/** Reads up to `buffer.length` bytes; returns the count (0 at end of file). EAGAIN on an empty non-blocking fd. */
export function readFd(fd: number, buffer: Uint8Array): number {
  const n = libc().read(fd, buffer, buffer.length);
  if (n < 0) throw syscallError('read', errno(), { fd });
  return n;
}

/** Writes `buffer`; returns the bytes written. */
export function writeFd(fd: number, buffer: Uint8Array): number {
  const n = libc().write(fd, buffer, buffer.length);
  if (n < 0) throw syscallError('write', errno(), { fd });
  return n;
}

/** Resizes a file (memfd) to `length` bytes. */
export function ftruncateFd(fd: number, length: number): void {
  if (libc().ftruncate(fd, length) !== 0) throw syscallError('ftruncate', errno(), { fd });
}
