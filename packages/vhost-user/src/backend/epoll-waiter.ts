import { Worker } from 'node:worker_threads';
import { EPOLLET, EPOLLIN, Epoll, EventFd, koffiModulePath } from '@virtio-ts/host';

/** epoll `data` of the stop eventfd; vrings use 1..126, the control socket 0. */
const STOP = 127;

// Atomics.waitAsync exists in Node 20 (V8) but is typed only in lib.es2024, which our ES2023 lib
// setting leaves out (to keep other Node-21+ APIs out of the code).
type WaitAsync = (array: Int32Array, index: number, value: number, timeout?: number) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
const WORDS = 4;

// The waiter is a few lines of plain JavaScript run in its own thread: it blocks in epoll_wait and
// publishes ready fds as bits in shared memory, then wakes the session with Atomics.notify. It
// loads koffi by absolute path so it needs no build output of ours.
const WAITER_SOURCE = `
const { workerData } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const lib = koffi.load('libc.so.6');
const epollWait = lib.func('int epoll_wait(int, _Out_ uint8_t *, int, int)');
const state = new Int32Array(workerData.state);
const buffer = new Uint8Array(12 * 64);
const view = new DataView(buffer.buffer);
for (;;) {
  const n = epollWait(workerData.epollFd, buffer, 64, -1);
  if (n < 0) {
    const e = koffi.errno();
    if (e === 4) continue;
    Atomics.store(state, ${1 + WORDS}, e);
    Atomics.add(state, 0, 1);
    Atomics.notify(state, 0);
    break;
  }
  let stop = false;
  for (let i = 0; i < n; i++) {
    const data = view.getUint32(i * 12 + 4, true);
    if (data === ${STOP}) stop = true;
    else Atomics.or(state, 1 + (data >>> 5), 1 << (data & 31));
  }
  Atomics.add(state, 0, 1);
  Atomics.notify(state, 0);
  if (stop) break;
}
`;

/**
 * Edge-triggered readiness for one vhost-user session, delivered without a hop through the main
 * event loop: a dedicated thread blocks in epoll_wait; the session thread awaits an Atomics word.
 */
export class EpollWaiter {
  private readonly epoll = new Epoll(64);
  private readonly stopFd = EventFd.create();
  private readonly state = new Int32Array(new SharedArrayBuffer(4 * (2 + WORDS)));
  private readonly worker: Worker;
  private seq = 0;
  private closed = false;

  constructor() {
    this.epoll.add(this.stopFd.fd, EPOLLIN, STOP);
    const koffiPath = koffiModulePath();
    this.worker = new Worker(WAITER_SOURCE, { eval: true, workerData: { koffiPath, epollFd: this.epoll.fd, state: this.state.buffer } });
    this.worker.unref();
  }

  /** Watches `fd` (edge-triggered) and reports it as `id` (0..126). */
  watch(fd: number, id: number): void {
    this.epoll.add(fd, EPOLLIN | EPOLLET, id);
  }

  unwatch(fd: number): void {
    try {
      this.epoll.remove(fd);
    } catch {
      // already closed: the kernel dropped it from the set
    }
  }

  /** Waits (up to `timeoutMs`, or forever) for readiness; returns the ids that became ready. */
  async wait(timeoutMs?: number): Promise<number[]> {
    for (;;) {
      const ready = this.take();
      if (ready.length > 0 || this.closed) return ready;
      const error = Atomics.load(this.state, 1 + WORDS);
      if (error !== 0) throw new Error(`epoll_wait failed with errno ${error}`);
      const result = waitAsync(this.state, 0, this.seq, timeoutMs);
      if (result.async) {
        if ((await result.value) === 'timed-out') return this.take();
      }
      this.seq = Atomics.load(this.state, 0);
    }
  }

  /** Stops the waiter thread and closes the epoll set. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopFd.signal();
    await new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      setTimeout(() => void this.worker.terminate().then(() => resolve()), 2000).unref();
    });
    this.epoll.close();
    this.stopFd.close();
  }

  private take(): number[] {
    const ready: number[] = [];
    for (let w = 0; w < WORDS; w++) {
      let bits = Atomics.exchange(this.state, 1 + w, 0);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits);
        ready.push(w * 32 + bit);
        bits &= ~(1 << bit);
      }
    }
    return ready;
  }
}
