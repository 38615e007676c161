import { EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD } from './constants.js';
import { HostError, syscallError, toError } from './errors.js';
import { closeFd } from './fd.js';
import { errno, libc, libcAsync } from './libc.js';

/** struct epoll_event is packed on x86_64: u32 events, u64 data = 12 bytes. */
const EVENT_SIZE = 12;

/** One ready file descriptor: the events and the 32-bit `data` given to `add`. */
export interface EpollEvent {
  readonly events: number;
  readonly data: number;
}

/**
 * An epoll set. `wait` blocks the calling thread (use it in a worker: it blocks only that worker);
 * `waitAsync` waits on the thread pool.
 */
export class Epoll {
  readonly fd: number;
  private closed = false;
  private readonly control = new Uint8Array(EVENT_SIZE);
  private readonly controlView = new DataView(this.control.buffer);
  private readonly events: Uint8Array;
  private readonly eventsView: DataView;
  readonly maxEvents: number;

  constructor(maxEvents = 64) {
    if (!Number.isInteger(maxEvents) || maxEvents < 1 || maxEvents > 4096) throw new HostError('INVALID_ARGUMENT', 'maxEvents must be 1..4096');
    const fd = libc().epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw syscallError('epoll_create1', errno());
    this.fd = fd;
    this.maxEvents = maxEvents;
    this.events = new Uint8Array(EVENT_SIZE * maxEvents);
    this.eventsView = new DataView(this.events.buffer);
  }

  add(fd: number, events: number, data: number): void {
    this.ctl(EPOLL_CTL_ADD, fd, events, data, 'epoll_ctl(ADD)');
  }
  modify(fd: number, events: number, data: number): void {
    this.ctl(EPOLL_CTL_MOD, fd, events, data, 'epoll_ctl(MOD)');
  }
  remove(fd: number): void {
    this.check();
    if (libc().epoll_ctl(this.fd, EPOLL_CTL_DEL, fd, null) !== 0) throw syscallError('epoll_ctl(DEL)', errno(), { fd });
  }

  /** Waits up to `timeoutMs` (-1: forever; 0: poll). EINTR returns no events. */
  wait(timeoutMs: number): EpollEvent[] {
    this.check();
    const n = libc().epoll_wait(this.fd, this.events, this.maxEvents, timeoutMs);
    if (n < 0) {
      const e = errno();
      if (e === 4 /* EINTR */) return [];
      throw syscallError('epoll_wait', e, { fd: this.fd });
    }
    return this.decode(n, this.events);
  }

  /** Like `wait`, on the thread pool. */
  waitAsync(timeoutMs: number): Promise<EpollEvent[]> {
    this.check();
    const buffer = new Uint8Array(EVENT_SIZE * this.maxEvents);
    return new Promise((resolve, reject) => {
      libcAsync().epoll_wait(this.fd, buffer, this.maxEvents, timeoutMs, (error, n) => {
        if (error) reject(toError(error));
        else if (n < 0) resolve([]);
        else resolve(this.decode(n, buffer));
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }

  private decode(n: number, buffer: Uint8Array): EpollEvent[] {
    const view = buffer === this.events ? this.eventsView : new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const out: EpollEvent[] = [];
    for (let i = 0; i < n; i++) {
      out.push({ events: view.getUint32(i * EVENT_SIZE, true), data: view.getUint32(i * EVENT_SIZE + 4, true) });
    }
    return out;
  }

  private ctl(op: number, fd: number, events: number, data: number, name: string): void {
    this.check();
    this.controlView.setUint32(0, events >>> 0, true);
    this.controlView.setBigUint64(4, BigInt(data >>> 0), true);
    if (libc().epoll_ctl(this.fd, op, fd, this.control) !== 0) throw syscallError(name, errno(), { fd });
  }

  private check(): void {
    if (this.closed) throw new HostError('CLOSED', 'epoll is closed', { fd: this.fd });
  }
}
