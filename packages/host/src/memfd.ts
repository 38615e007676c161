import { MFD_ALLOW_SEALING, MFD_CLOEXEC } from './constants.js';
import { HostError, syscallError } from './errors.js';
import { closeFd, ftruncateFd } from './fd.js';
import { errno, libc } from './libc.js';

/**
 * Creates an anonymous memory file of `size` bytes (memfd_create + ftruncate), close-on-exec.
 * This is what guest RAM is made of when it is shared with QEMU or a vhost-user backend. On failure
 * nothing is left open.
 */
export function createMemfd(name: string, size: number, options: { allowSealing?: boolean } = {}): number {
  if (!Number.isSafeInteger(size) || size <= 0) throw new HostError('INVALID_ARGUMENT', `memfd size must be a positive integer, got ${size}`);
  const fd = libc().memfd_create(name, MFD_CLOEXEC | (options.allowSealing ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) throw syscallError('memfd_create', errno());
  try {
    ftruncateFd(fd, size);
  } catch (error) {
    closeFd(fd);
    throw error;
  }
  return fd;
}
