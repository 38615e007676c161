/// <reference types="node" />
import { Worker } from 'node:worker_threads';
import { EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, Epoll, EventFd, koffiModulePath } from '@virtio-ts/host';

/** Ids 0..MAX_IDS-1; each has a "readable" and a "writable" bit in shared memory. */
export const MAX_IDS = 64;
const WORDS = (MAX_IDS * 2) / 32;
/** epoll `data` of the stop eventfd. */
const STOP = 0xffff;

// Atomics.waitAsync exists in Node 20 (V8) but is typed only in lib.es2024.
type WaitAsync = (array: Int32Array, index: number, value: number, timeout?: number) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

// A few lines of plain JavaScript in a thread of their own: block in epoll_wait, publish ready fds
// as bits in shared memory (2·id readable, 2·id+1 writable), wake the event loop with
// Atomics.notify. Evaluated from source and loading koffi by absolute path, so it needs no build
// output. Layout: [0] sequence, [1..WORDS] bits, [WORDS+1] errno of a failed epoll_wait.
const WAITER_SOURCE = `
const { workerData } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const lib = koffi.load('libc.so.6');
const epollWait = lib.func('int epoll_wait(int, _Out_ uint8_t *, int, int)');
const state = new Int32Array(workerData.state);
const buffer = new Uint8Array(12 * 64);
const view = new DataView(buffer.buffer);
const OUT = ${EPOLLOUT}, IN_LIKE = ${EPOLLIN | EPOLLERR | EPOLLHUP};
for (;;) {
  const n = epollWait(workerData.epollFd, buffer, 64, -1);
  if (n < 0) {
    const e = koffi.errno();
    if (e === 4) continue;
    Atomics.store(state, ${WORDS + 1}, e);
    Atomics.add(state, 0, 1);
    Atomics.notify(state, 0);
    break;
  }
  let stop = false;
  for (let i = 0; i < n; i++) {
    const events = view.getUint32(i * 12, true);
    const id = view.getUint32(i * 12 + 4, true);
    if (id === ${STOP}) { stop = true; continue; }
    if (events & IN_LIKE) Atomics.or(state, 1 + ((2 * id) >>> 5), 1 << ((2 * id) & 31));
    if (events & OUT) Atomics.or(state, 1 + ((2 * id + 1) >>> 5), 1 << ((2 * id + 1) & 31));
  }
  Atomics.add(state, 0, 1);
  Atomics.notify(state, 0);
  if (stop) break;
}
`;

/** What became ready for one id. */
export interface Readiness {
  readonly id: number;
  readonly readable: boolean;
  readonly writable: boolean;
}

/**
 * Edge-triggered fd readiness without busy polling and without blocking the event loop: a
 * dedicated thread blocks in epoll_wait and publishes ready ids through Atomics; the event loop
 * awaits `Atomics.waitAsync` on a shared word. (The same pattern as vhost-user's session waiter,
 * with a writable bit per fd for back-pressure.)
 */
export class ReadinessWaiter {
  private readonly epoll = new Epoll(64);
  private readonly stopFd = EventFd.create();
  private readonly state = new Int32Array(new SharedArrayBuffer(4 * (2 + WORDS)));
  private readonly worker: Worker;
  private seq = 0;
  private closed = false;

  constructor() {
    this.epoll.add(this.stopFd.fd, EPOLLIN, STOP);
    this.worker = new Worker(WAITER_SOURCE, { eval: true, workerData: { koffiPath: koffiModulePath(), epollFd: this.epoll.fd, state: this.state.buffer } });
    this.worker.unref();
  }

  /** Watches `fd` edge-triggered for input and output, reported as `id` (0..MAX_IDS-1). */
  watch(fd: number, id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= MAX_IDS) throw new RangeError(`readiness id ${id} out of 0..${MAX_IDS - 1}`);
    this.epoll.add(fd, EPOLLIN | EPOLLOUT | EPOLLET, id);
  }

  unwatch(fd: number): void {
    try {
      this.epoll.remove(fd);
    } catch {
      // already closed: the kernel dropped it from the set
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Waits for readiness; resolves with what became ready ([] once closed). */
  async wait(): Promise<Readiness[]> {
    for (;;) {
      if (this.closed) return [];
      const ready = this.take();
      if (ready.length > 0) return ready;
      const error = Atomics.load(this.state, WORDS + 1);
      if (error !== 0) throw new Error(`epoll_wait failed with errno ${error}`);
      const result = waitAsync(this.state, 0, this.seq);
      if (result.async) await result.value;
      this.seq = Atomics.load(this.state, 0);
    }
  }

  /** Stops the thread and closes the epoll set. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopFd.signal();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate().then(() => resolve()), 2000);
      timer.unref();
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.epoll.close();
    this.stopFd.close();
    // Wake a wait() still parked on the word (the thread may have been terminated without notifying).
    Atomics.add(this.state, 0, 1);
    Atomics.notify(this.state, 0);
  }

  private take(): Readiness[] {
    const byId = new Map<number, { readable: boolean; writable: boolean }>();
    for (let w = 0; w < WORDS; w++) {
      let bits = Atomics.exchange(this.state, 1 + w, 0);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits);
        bits &= ~(1 << bit);
        const n = w * 32 + bit;
        const id = n >>> 1;
        const entry = byId.get(id) ?? { readable: false, writable: false };
        if (n & 1) entry.writable = true;
        else entry.readable = true;
        byId.set(id, entry);
      }
    }
    return [...byId].map(([id, r]) => ({ id, ...r }));
  }
}
