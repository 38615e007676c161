import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain } from '@virtio-ts/ring';
import { scatter } from '../chain-io.js';
import type { QueueRunner } from '../queue-runner.js';
import type { EntropySource } from './entropy.js';
import type { RngMetrics } from './metrics.js';
import type { Clock, TokenBucket } from './rate-limiter.js';

/** What the rng queue handler shares with its device. */
export interface RngQueueContext {
  readonly memory: GuestMemory;
  readonly entropy: EntropySource;
  readonly metrics: RngMetrics;
  readonly clock: Clock;
  readonly bucket: TokenBucket | undefined;
  /** Largest number of bytes given for one buffer (bounds the private buffer). */
  readonly maxRequestBytes: number;
}

/**
 * The requestq of a virtio-rng device (VIRTIO 1.3 §5.4.6): fills each buffer with random bytes,
 * in order. With a rate limit, a buffer waits until the bucket holds enough tokens for it (or
 * for a full bucket, if smaller): requests wait, they do not fail. §5.4.6.2 lets the device use
 * less than the whole buffer, so a buffer larger than the limits gets a prefix.
 */
export class RngQueueHandler {
  private current: DescriptorChain | null = null;
  private timer: unknown = undefined;
  private scratch: Uint8Array | undefined;
  private stopped = false;

  constructor(
    private readonly runner: QueueRunner,
    private readonly context: RngQueueContext,
  ) {}

  /** True while a buffer waits for the rate limiter. */
  get waiting(): boolean {
    return this.timer !== undefined;
  }

  notify(): void {
    this.context.metrics.notifications++;
    this.process();
  }

  /** Stops the handler: the timer is cancelled and nothing more is pushed (device reset). */
  stop(): void {
    this.stopped = true;
    this.runner.detach();
    if (this.timer !== undefined) this.context.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.current = null;
  }

  private process(): void {
    if (this.stopped || this.timer !== undefined) return;
    const { metrics, bucket, clock } = this.context;
    for (let served = 0; ; served++) {
      if (served >= this.runner.yieldAfter) {
        // H17: a guest keeping the ring full must not hold the thread; continue from a timer.
        this.timer = clock.setTimeout(() => {
          this.timer = undefined;
          this.process();
        }, 0);
        return;
      }
      if (this.current === null) {
        let stop = false;
        this.runner.drain((chain) => {
          this.current = chain;
          stop = true;
          return false;
        }, 1);
        if (!stop || this.current === null) return;
      }
      const chain: DescriptorChain = this.current;
      if (chain.readableLength > 0 || chain.writableLength === 0) {
        if (chain.readableLength > 0) metrics.readableBuffers++;
        else metrics.emptyBuffers++;
        this.current = null;
        this.runner.complete(chain.head, 0);
        continue;
      }
      const want = Math.min(chain.writableLength, this.context.maxRequestBytes);
      if (bucket !== undefined && !bucket.tryTake(Math.min(want, bucket.capacity))) {
        metrics.throttled++;
        this.timer = clock.setTimeout(() => {
          this.timer = undefined;
          this.process();
        }, Math.max(1, bucket.msUntil(want)));
        return;
      }
      const give = bucket === undefined ? want : Math.min(want, bucket.capacity);
      this.current = null;
      if (!this.fill(chain, give)) return;
      metrics.requests++;
      metrics.bytes += give;
      this.runner.complete(chain.head, give);
    }
  }

  private fill(chain: DescriptorChain, length: number): boolean {
    this.scratch ??= new Uint8Array(this.context.maxRequestBytes);
    const bytes = this.scratch.subarray(0, length);
    try {
      this.context.entropy(bytes);
      scatter(this.context.memory, chain.writable, bytes);
      bytes.fill(0); // do not keep the guest's random bytes around
      return true;
    } catch (error) {
      this.runner.fail(`rng: filling buffer ${chain.head}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }
}
