import { BackendError } from '../errors.js';
import { clearTimer, monotonicNow, setTimer } from '../web-apis.js';

/** Time source and timers, injectable so that tests run on a fake clock. */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The host's clock: `performance.now()` (or `Date.now()`) and the global timers. */
export const systemClock: Clock = {
  now: monotonicNow,
  setTimeout: setTimer,
  clearTimeout: clearTimer,
};

/** A bandwidth limit: `bytes` per `periodMs`, with bursts up to `burst` bytes (default `bytes`). */
export interface RateLimit {
  readonly bytes: number;
  readonly periodMs: number;
  readonly burst?: number;
}

/**
 * A token bucket (Firecracker's rate limiter model): `capacity` tokens, refilled continuously at
 * `bytes / periodMs`. Over any interval of length T the tokens taken are at most
 * `capacity + rate * T`.
 */
export class TokenBucket {
  readonly capacity: number;
  /** Tokens per millisecond. */
  readonly rate: number;
  private level: number;
  private last: number;

  constructor(
    limit: RateLimit,
    private readonly clock: Clock,
  ) {
    const burst = limit.burst ?? limit.bytes;
    for (const [field, value] of [['bytes', limit.bytes], ['periodMs', limit.periodMs], ['burst', burst]] as const) {
      if (!Number.isFinite(value) || value <= 0) {
        throw new BackendError('INVALID_OPTION', `rate limit ${field} must be a positive number`, { device: 'rng', field });
      }
    }
    this.capacity = burst;
    this.rate = limit.bytes / limit.periodMs;
    this.level = burst;
    this.last = clock.now();
  }

  /** Tokens available now. */
  get tokens(): number {
    this.refill();
    return this.level;
  }

  /** Sets the level (restore), clamped to [0, capacity]. */
  set tokens(value: number) {
    this.refill();
    this.level = Math.min(this.capacity, Math.max(0, value));
  }

  /** Takes `n` whole tokens if available; false (taking none) otherwise. */
  tryTake(n: number): boolean {
    this.refill();
    if (this.level < n) return false;
    this.level -= n;
    return true;
  }

  /** Milliseconds until `n` tokens (at most `capacity`) are available. */
  msUntil(n: number): number {
    this.refill();
    const missing = Math.min(n, this.capacity) - this.level;
    return missing <= 0 ? 0 : Math.ceil(missing / this.rate);
  }

  private refill(): void {
    const now = this.clock.now();
    if (now > this.last) {
      this.level = Math.min(this.capacity, this.level + (now - this.last) * this.rate);
      this.last = now;
    }
  }
}
