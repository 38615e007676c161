import type { BlockDriver, BlockDriverInfo } from '@virtio-ts/block';

/**
 * A BlockDriver that measures the time spent inside another one's `read` and `write`: the
 * backing store's own cost, which the bench subtracts from the guest's latency to get the
 * stack's overhead per request.
 */
export class TimedBlockDriver implements BlockDriver {
  readonly specificationVersion = 'v1' as const;
  /** ns spent inside read/write of the inner driver (overlapping requests each count). */
  busyNs = 0;
  requests = 0;

  constructor(readonly inner: BlockDriver) {}

  get length(): number {
    return this.inner.length;
  }
  get requestAlignment(): number {
    return this.inner.requestAlignment;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  /** Forgets the counters (between two benches of one run). */
  resetCounters(): void {
    this.busyNs = 0;
    this.requests = 0;
  }

  async read(offset: number, buffer: Uint8Array): Promise<void> {
    const t0 = performance.now();
    try {
      await this.inner.read(offset, buffer);
    } finally {
      this.busyNs += (performance.now() - t0) * 1e6;
      this.requests++;
    }
  }

  async write(offset: number, buffer: Uint8Array): Promise<void> {
    const t0 = performance.now();
    try {
      await this.inner.write(offset, buffer);
    } finally {
      this.busyNs += (performance.now() - t0) * 1e6;
      this.requests++;
    }
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }
  info(): Promise<BlockDriverInfo> {
    return this.inner.info();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Wraps `inner` and forwards its optional capabilities (discard, write zeroes, block status)
 * only when it has them, so the device offers exactly what the backing store can do.
 */
export function timeBlockDriver(inner: BlockDriver): TimedBlockDriver {
  const timed = new TimedBlockDriver(inner);
  const target = timed as TimedBlockDriver & Partial<Pick<BlockDriver, 'discard' | 'writeZeroes' | 'blockStatus'>>;
  if (inner.discard !== undefined) target.discard = (offset, length) => inner.discard!(offset, length);
  if (inner.writeZeroes !== undefined) target.writeZeroes = (offset, length, options) => inner.writeZeroes!(offset, length, options);
  if (inner.blockStatus !== undefined) target.blockStatus = (offset, length) => inner.blockStatus!(offset, length);
  return timed;
}
