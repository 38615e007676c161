import { EFD_CLOEXEC, EFD_NONBLOCK } from './constants.js';
import { HostError, syscallError, toError } from './errors.js';
import { closeFd } from './fd.js';
import { errno, libc, libcAsync } from './libc.js';

/**
 * An eventfd: the kick and call notifiers of vhost-user (ioeventfd/irqfd in KVM terms).
 * Non-blocking by default; `readAsync` waits on the thread pool without blocking the event loop.
 */
export class EventFd {
  readonly fd: number;
  private closed = false;
  private readonly scratch = new Uint8Array(8);
  private readonly one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

  private constructor(fd: number) {
    this.fd = fd;
  }

  static create(options: { initialValue?: number; nonBlocking?: boolean } = {}): EventFd {
    const flags = EFD_CLOEXEC | (options.nonBlocking === false ? 0 : EFD_NONBLOCK);
    const fd = libc().eventfd(options.initialValue ?? 0, flags);
    if (fd < 0) throw syscallError('eventfd', errno());
    return new EventFd(fd);
  }

  /** Wraps an eventfd received from a peer (it takes ownership: close() closes it). */
  static fromFd(fd: number): EventFd {
    if (!Number.isInteger(fd) || fd < 0) throw new HostError('INVALID_ARGUMENT', `not a file descriptor: ${fd}`);
    return new EventFd(fd);
  }

  /** Adds `value` (default 1) to the counter: wakes a reader. */
  signal(value = 1): void {
    this.check();
    let buffer = this.one;
    if (value !== 1) {
      buffer = new Uint8Array(8);
      new DataView(buffer.buffer).setBigUint64(0, BigInt(value), true);
    }
    if (libc().write(this.fd, buffer, 8) !== 8) throw syscallError('write', errno(), { fd: this.fd });
  }

  /** Reads and resets the counter; 0 when it was zero (non-blocking fd). */
  consume(): number {
    this.check();
    const n = libc().read(this.fd, this.scratch, 8);
    if (n !== 8) {
      const e = errno();
      if (e === 11 /* EAGAIN */) return 0;
      throw syscallError('read', e, { fd: this.fd });
    }
    return Number(new DataView(this.scratch.buffer).getBigUint64(0, true));
  }

  /** Waits for the counter on the thread pool (the fd must be blocking) and resets it. */
  readAsync(): Promise<number> {
    this.check();
    const buffer = new Uint8Array(8);
    return new Promise((resolve, reject) => {
      libcAsync().read(this.fd, buffer, 8, (error, n) => {
        if (error) reject(toError(error));
        else if (n !== 8) reject(syscallError('read', errno(), { fd: this.fd }));
        else resolve(Number(new DataView(buffer.buffer).getBigUint64(0, true)));
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }

  private check(): void {
    if (this.closed) throw new HostError('CLOSED', 'eventfd is closed', { fd: this.fd });
  }
}
