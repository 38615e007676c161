import type { ActivationContext, Features, VirtioDevice } from '@virtio-ts/device';
import { VIRTIO_ID_RNG } from '@virtio-ts/device';
import { ringFeatures, type RingFeatureOptions } from '../common-features.js';
import { BackendError } from '../errors.js';
import { QueueRunner } from '../queue-runner.js';
import { webCryptoEntropy, type EntropySource } from './entropy.js';
import { RngMetrics } from './metrics.js';
import { restoreRngState, type RngDeviceState } from './persist.js';
import { RngQueueHandler } from './queue-handler.js';
import { systemClock, TokenBucket, type Clock, type RateLimit } from './rate-limiter.js';

/** Options of a {@link RngDevice}. */
export interface RngDeviceOptions extends RingFeatureOptions {
  /** Maximum size of the requestq, a power of two. Default 256. */
  readonly queueSize?: number;
  /** Limit the entropy handed to the guest (token bucket). Default: unlimited. */
  readonly rateLimit?: RateLimit;
  /** Where the bytes come from. Default: the Web Crypto API. */
  readonly entropy?: EntropySource;
  /** Time source for the rate limiter. Default: the system clock. */
  readonly clock?: Clock;
  /** Bytes given for one buffer at most. Default 64 KiB. */
  readonly maxRequestBytes?: number;
}

/**
 * A virtio-rng (entropy) device (VIRTIO 1.3 §5.4): random bytes from the Web Crypto API, with an
 * optional rate limit under which requests wait rather than fail.
 *
 * @example
 * ```ts
 * const rng = new RngDevice({ rateLimit: { bytes: 1024, periodMs: 1000 } }); // 1 KiB/s
 * transport.attach(rng);
 * console.log(JSON.stringify(rng.metrics)); // { "requests": ..., "bytes": ..., "throttled": ... }
 * ```
 */
export class RngDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_RNG;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  /** §5.4.4: no configuration space. */
  readonly configSize = 0;
  readonly configGeneration = 0;
  readonly metrics = new RngMetrics();
  private readonly bucket: TokenBucket | undefined;
  private readonly clock: Clock;
  private readonly entropy: EntropySource;
  private readonly maxRequestBytes: number;
  private handler: RngQueueHandler | undefined;

  constructor(options: RngDeviceOptions = {}) {
    const queueSize = options.queueSize ?? 256;
    if (!Number.isInteger(queueSize) || queueSize < 1 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) {
      throw new BackendError('INVALID_OPTION', 'rng option queueSize must be a power of two in 1..32768', { device: 'rng', field: 'queueSize' });
    }
    const maxRequestBytes = options.maxRequestBytes ?? 65536;
    if (!Number.isInteger(maxRequestBytes) || maxRequestBytes < 1 || maxRequestBytes > 1 << 24) {
      throw new BackendError('INVALID_OPTION', 'rng option maxRequestBytes must be 1..16 MiB', { device: 'rng', field: 'maxRequestBytes' });
    }
    this.clock = options.clock ?? systemClock;
    this.bucket = options.rateLimit === undefined ? undefined : new TokenBucket(options.rateLimit, this.clock);
    this.entropy = options.entropy ?? webCryptoEntropy;
    this.maxRequestBytes = maxRequestBytes;
    this.deviceFeatures = ringFeatures(options);
    this.queueMaxSizes = [queueSize];
  }

  /** True while a buffer waits for the rate limiter. */
  get waiting(): boolean {
    return this.handler?.waiting ?? false;
  }

  readConfig(): void {}

  writeConfig(): void {}

  activate(context: ActivationContext): void {
    this.handler?.stop();
    this.handler = undefined;
    const queue = context.queues[0];
    if (queue === null || queue === undefined) return;
    const metrics = this.metrics;
    const runner = new QueueRunner(0, queue, context, {
      ringError: () => metrics.ringErrors++,
      needsReset: () => metrics.needsReset++,
      interrupt: () => metrics.interrupts++,
    });
    this.handler = new RngQueueHandler(runner, {
      memory: context.memory,
      entropy: this.entropy,
      metrics,
      clock: this.clock,
      bucket: this.bucket,
      maxRequestBytes: this.maxRequestBytes,
    });
  }

  queueNotify(index: number): void {
    if (index === 0) this.handler?.notify();
  }

  reset(): void {
    this.handler?.stop();
    this.handler = undefined;
  }

  saveState(): RngDeviceState {
    return this.bucket === undefined ? { version: 1 } : { version: 1, tokens: this.bucket.tokens };
  }

  restoreState(state: unknown): void {
    const s = restoreRngState(state);
    if (this.bucket !== undefined && s.tokens !== undefined) this.bucket.tokens = s.tokens;
  }
}
