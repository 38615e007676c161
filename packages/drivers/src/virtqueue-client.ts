import type { VirtioTransport } from '@virtio-ts/device';
import { RingError, type DriverQueue, type Segment } from '@virtio-ts/ring';
import { DriverError } from './errors.js';
import { deferMicrotask } from './web-apis.js';

interface Request {
  readonly readable: readonly Segment[];
  readonly writable: readonly Segment[];
  readonly resolve: (length: number) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The driver side of one virtqueue as a promise API: `submit` makes a buffer available, kicks
 * the device when the ring says so (§2.7.13 / §2.8.21) and resolves with the used length when
 * the device returns it. Buffers that do not fit wait in order until descriptors free up, so any
 * number of requests can be in flight.
 */
export class VirtqueueClient {
  readonly queue: DriverQueue<Request>;
  private readonly waiting: Request[] = [];
  private closed = false;
  private draining = false;

  constructor(
    private readonly transport: VirtioTransport,
    readonly index: number,
    options: { size?: number } = {},
  ) {
    this.queue = transport.setupQueue<Request>(index, { ...(options.size !== undefined ? { size: options.size } : {}), onInterrupt: () => this.onInterrupt() });
  }

  /** Requests made available and not yet used, plus those waiting for descriptors. */
  get pending(): number {
    return this.queue.size - this.queue.freeCount + this.waiting.length;
  }

  /** Makes a buffer available; resolves with the bytes the device wrote (the used length). */
  submit(readable: readonly Segment[], writable: readonly Segment[]): Promise<number> {
    if (this.closed) return Promise.reject(new DriverError('DEVICE_RESET', 'the queue was reset', { queue: this.index }));
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ readable, writable, resolve, reject });
      this.pump();
    });
  }

  /** Fails every pending request (the device was reset); the queue is unusable afterwards. */
  close(): void {
    this.closed = true;
    const error = new DriverError('DEVICE_RESET', 'the device was reset while the request was pending', { queue: this.index });
    for (const request of this.waiting.splice(0)) request.reject(error);
    for (const request of this.queue.detachUnused()) request.reject(error);
  }

  /** Adds what fits, then kicks once. */
  private pump(): void {
    let added = 0;
    while (this.waiting.length > 0) {
      const request = this.waiting[0]!;
      try {
        this.queue.add(request.readable, request.writable, request);
      } catch (error) {
        if (RingError.isInstance(error) && error.code === 'QUEUE_FULL' && this.pending > this.waiting.length) break; // wait for completions
        this.waiting.shift();
        request.reject(error);
        continue;
      }
      this.waiting.shift();
      added++;
    }
    if (added > 0 && this.queue.kickPrepare()) this.transport.notify(this.index);
  }

  /** Used buffer notification: collects completions (with the §2.7.10 re-check), then refills. */
  private onInterrupt(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    try {
      for (;;) {
        this.queue.disableCallback();
        for (let used = this.queue.getUsed(); used !== null; used = this.queue.getUsed()) {
          const request = used.token;
          const capacity = request.writable.reduce((n, s) => n + s.length, 0);
          if (used.length > capacity) {
            request.reject(new DriverError('PROTOCOL', `used length ${used.length} exceeds the ${capacity} writable bytes`, { queue: this.index, length: used.length }));
          } else {
            request.resolve(used.length);
          }
        }
        if (this.queue.enableCallback()) break;
      }
    } finally {
      this.draining = false;
    }
    // Refill outside the interrupt handler's stack: a synchronous device would re-enter here.
    if (this.waiting.length > 0) deferMicrotask(() => this.pump());
  }
}
