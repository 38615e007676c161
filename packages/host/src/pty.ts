import { O_CLOEXEC, O_RDWR } from './constants.js';
import { syscallError } from './errors.js';
import { closeFd } from './fd.js';
import { errno, libc } from './libc.js';

const O_NOCTTY = 0x100;

/** A pseudo-terminal: the master side's fd (ours) and the path of the slave side (for a user). */
export interface Pty {
  readonly fd: number;
  readonly path: string;
}

/**
 * Opens a pseudo-terminal pair (posix_openpt, grantpt, unlockpt, ptsname_r), as QEMU's
 * `-chardev pty` does: a user attaches with `screen /dev/pts/N`. Nothing stays open on failure.
 */
export function openPty(): Pty {
  const fd = libc().posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw syscallError('posix_openpt', errno());
  try {
    if (libc().grantpt(fd) !== 0) throw syscallError('grantpt', errno(), { fd });
    if (libc().unlockpt(fd) !== 0) throw syscallError('unlockpt', errno(), { fd });
    const name = new Uint8Array(128);
    const e = libc().ptsname_r(fd, name, name.length);
    if (e !== 0) throw syscallError('ptsname_r', e, { fd });
    const end = name.indexOf(0);
    return { fd, path: new TextDecoder().decode(name.subarray(0, end < 0 ? name.length : end)) };
  } catch (error) {
    closeFd(fd);
    throw error;
  }
}
