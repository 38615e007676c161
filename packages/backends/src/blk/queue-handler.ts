import { BlockError, type BlockDriver } from '@virtio-ts/block';
import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain } from '@virtio-ts/ring';
import { scatter, segmentViews } from '../chain-io.js';
import type { QueueRunner } from '../queue-runner.js';
import { SECTOR_SIZE, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_ID_BYTES } from './constants.js';
import { readInto, writeFrom } from './data-transfer.js';
import { faultStatus } from './errors.js';
import type { BlkMetrics } from './metrics.js';
import { clearTimer, setTimer } from '../web-apis.js';
import { parseRequest, type BlkRequest, type DiscardRange, type RequestLimits } from './request.js';

/** What a queue handler shares with its device. */
export interface BlkQueueContext {
  readonly memory: GuestMemory;
  readonly driver: BlockDriver;
  /** The current request limits (capacity can change while running). */
  limits(): RequestLimits;
  /** The 20-byte, NUL-padded device ID string. */
  readonly serial: Uint8Array;
  readonly metrics: BlkMetrics;
  /** Whether writes must be stable before completion (§5.2.6.2 cases 1 and 2). */
  writethrough(): boolean;
  /** Changes on every device reset; completions of an older generation are dropped. */
  generation(): number;
}

/** Largest zero buffer used to emulate WRITE_ZEROES on a driver without `writeZeroes`. */
const ZERO_CHUNK = 1024 * 1024;
let zeroChunk: Uint8Array | undefined;

/**
 * How long available buffer notifications may stay suppressed while requests are in flight
 * before the queue re-enables them anyway (a slow request — a flush, a read from a cold disk —
 * must not hold back the requests queued behind it for longer than this).
 */
export const SUPPRESS_LIMIT_MS = 1;

/**
 * One request queue of a virtio-blk device: notify → pop → parse → execute on the BlockDriver →
 * status byte → `pushUsed` → interrupt. Requests run concurrently and complete in whatever
 * order the driver finishes them (§5.2.6: "serviced (probably out of order)").
 *
 * While requests are in flight the queue leaves available buffer notifications disabled
 * (§2.7.10: the device MAY suppress them) and looks at the available ring again on every
 * completion instead, the way a polling back-end does: a driver adding requests to a busy queue
 * then costs no notification (for vhost-user: no kick, no eventfd, no thread wake-up). When the
 * last request completes — or {@link SUPPRESS_LIMIT_MS} after suppressing, if none completed —
 * notifications are re-enabled and the ring is checked once more (the race of §2.7.10).
 */
export class BlkQueueHandler {
  private readonly pending = new Set<Promise<void>>();
  private readonly startChain = (chain: DescriptorChain): void => this.start(chain);
  /** The timer that re-enables notifications if no completion came within SUPPRESS_LIMIT_MS. */
  private suppressTimer: unknown = undefined;
  /** Completions since the timer was armed: while they keep coming, suppression goes on. */
  private completionsSinceArm = 0;

  constructor(
    private readonly runner: QueueRunner,
    private readonly context: BlkQueueContext,
  ) {}

  /** Requests started and not yet completed. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** The driver kicked this queue. */
  notify(): void {
    this.context.metrics.notifications++;
    this.pump();
  }

  /** Continues a drain that yielded (H17). */
  resume(): void {
    this.pump();
  }

  /** Stops touching the queue (device reset). */
  detach(): void {
    this.cancelSuppressTimer();
    this.runner.detach();
  }

  /**
   * Pops and starts every available request. With requests in flight it returns with
   * notifications disabled (a completion calls it again); with none, it re-enables them and
   * checks the ring once more before returning (§2.7.10).
   */
  private pump(): void {
    const runner = this.runner;
    if (runner.broken || runner.detached) return;
    let handed = 0;
    for (;;) {
      try {
        runner.queue.disableNotification();
      } catch (error) {
        runner.fail(`queue ${runner.index}: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
      for (;;) {
        if (handed >= runner.yieldAfter) {
          // H17: a driver that keeps the ring full cannot hold the thread; the drain resumes
          // from a timer (and re-enables notifications) like the suppression limit does.
          this.armSuppressTimer();
          return;
        }
        const chain = runner.pop();
        if (chain === undefined) return; // broken
        if (chain === null) break;
        handed++;
        this.start(chain);
      }
      if (this.pending.size > 0) {
        this.armSuppressTimer();
        return;
      }
      this.cancelSuppressTimer();
      let raced: boolean;
      try {
        raced = runner.queue.enableNotification();
      } catch (error) {
        runner.fail(`queue ${runner.index}: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
      if (!raced) return;
    }
  }

  private armSuppressTimer(): void {
    if (this.suppressTimer !== undefined) return;
    this.completionsSinceArm = 0;
    this.suppressTimer = setTimer(() => {
      this.suppressTimer = undefined;
      if (this.completionsSinceArm > 0) {
        // Requests are completing, so every completion looks at the ring: keep polling.
        this.pump();
        return;
      }
      // Nothing completed for a while (a slow request): notifications back on whatever is in
      // flight; QueueRunner.drain pops, enables and re-checks.
      this.runner.drain(this.startChain);
    }, SUPPRESS_LIMIT_MS);
  }

  private cancelSuppressTimer(): void {
    if (this.suppressTimer === undefined) return;
    clearTimer(this.suppressTimer);
    this.suppressTimer = undefined;
  }

  /** Resolves when every request started so far has completed (or been dropped by a reset). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private start(chain: DescriptorChain): void {
    const { memory, metrics } = this.context;
    let parsed;
    try {
      parsed = parseRequest(memory, chain, this.context.limits());
    } catch (error) {
      // Guest memory no longer backs what the ring validated: nothing can be trusted.
      this.runner.fail(`blk: reading request ${chain.head}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (parsed.kind === 'fault') {
      metrics.fault(parsed.fault);
      if (parsed.statusAddress === null) {
        this.runner.complete(chain.head, 0);
        return;
      }
      this.finish(chain, parsed.statusAddress, faultStatus(parsed.fault), 0);
      return;
    }
    const { request, statusAddress } = parsed;
    const generation = this.context.generation();
    metrics.inFlight++;
    metrics.maxInFlight = Math.max(metrics.maxInFlight, metrics.inFlight);
    const work = this.execute(request).then(
      (written) => ({ status: VIRTIO_BLK_S_OK, written }),
      () => {
        metrics.fault('BACKEND_ERROR');
        return { status: VIRTIO_BLK_S_IOERR, written: 0 };
      },
    );
    const done = work.then(({ status, written }) => {
      metrics.inFlight--;
      this.pending.delete(done);
      if (generation !== this.context.generation()) {
        metrics.droppedAfterReset++;
        return;
      }
      if (status === VIRTIO_BLK_S_OK) this.countSuccess(request);
      this.finish(chain, statusAddress, status, written);
      // Notifications may be off while requests were in flight: look at the ring now.
      this.completionsSinceArm++;
      this.pump();
    });
    this.pending.add(done);
  }

  /**
   * Writes the status byte and returns the chain. `written` is how many data bytes were written
   * from the start of the writable space: the used length counts them, plus the status byte
   * when it follows them directly (§2.7.8.2: len never exceeds what was written from the start).
   */
  private finish(chain: DescriptorChain, statusAddress: number, status: number, written: number): void {
    const { metrics, memory } = this.context;
    if (status === VIRTIO_BLK_S_OK) metrics.status.ok++;
    else if (status === VIRTIO_BLK_S_UNSUPP) metrics.status.unsupp++;
    else metrics.status.ioerr++;
    try {
      memory.writeU8(statusAddress, status);
    } catch (error) {
      this.runner.fail(`blk: writing status of ${chain.head}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    const length = written === chain.writableLength - 1 ? chain.writableLength : written;
    this.runner.complete(chain.head, length);
  }

  /** Runs a request; resolves with the data bytes written into the writable space. */
  private async execute(request: BlkRequest): Promise<number> {
    const { driver, memory } = this.context;
    const alignment = this.context.limits().alignment;
    switch (request.type) {
      case 'in':
        await readInto(driver, request.sector * SECTOR_SIZE, segmentViews(memory, request.data), alignment);
        return request.dataLength;
      case 'out':
        await writeFrom(driver, request.sector * SECTOR_SIZE, segmentViews(memory, request.data), alignment);
        if (this.context.writethrough()) await driver.flush();
        return 0;
      case 'flush':
        await driver.flush();
        return 0;
      case 'get-id':
        // §5.2.6: NUL-padded up to 20 bytes; exactly 20 bytes carry no NUL.
        return scatter(memory, request.data, this.context.serial.subarray(0, Math.min(VIRTIO_BLK_ID_BYTES, request.dataLength)));
      case 'discard':
        for (const range of request.ranges) await this.discard(range);
        return 0;
      case 'write-zeroes':
        for (const range of request.ranges) await this.writeZeroes(range);
        if (this.context.writethrough()) await driver.flush();
        return 0;
    }
  }

  private async discard(range: DiscardRange): Promise<void> {
    const { driver } = this.context;
    if (range.numSectors === 0 || driver.discard === undefined) return;
    // §5.2.6.2: the device MAY deallocate: discard is advisory, contents become unspecified, so
    // a driver that cannot discard this range (UNSUPPORTED) still completes the request.
    try {
      await driver.discard(range.sector * SECTOR_SIZE, range.numSectors * SECTOR_SIZE);
    } catch (error) {
      if (!(BlockError.isInstance(error) && error.code === 'UNSUPPORTED')) throw error;
    }
  }

  private async writeZeroes(range: DiscardRange): Promise<void> {
    const { driver } = this.context;
    if (range.numSectors === 0) return;
    const offset = range.sector * SECTOR_SIZE;
    const length = range.numSectors * SECTOR_SIZE;
    if (driver.writeZeroes !== undefined) {
      // §5.2.6.2: with unmap the device MAY deallocate; reads MUST return zeroes either way.
      try {
        await driver.writeZeroes(offset, length, { mayUnmap: range.unmap });
        return;
      } catch (error) {
        if (!(BlockError.isInstance(error) && error.code === 'UNSUPPORTED')) throw error;
        // Fall back to writing zeroes below.
      }
    }
    zeroChunk ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      await driver.write(offset + done, zeroChunk.subarray(0, Math.min(ZERO_CHUNK, length - done)));
    }
  }

  private countSuccess(request: BlkRequest): void {
    const m = this.context.metrics;
    switch (request.type) {
      case 'in':
        m.requests.in++;
        m.readBytes += request.dataLength;
        break;
      case 'out':
        m.requests.out++;
        m.writeBytes += request.dataLength;
        break;
      case 'flush':
        m.requests.flush++;
        break;
      case 'get-id':
        m.requests.getId++;
        break;
      case 'discard':
        m.requests.discard++;
        for (const r of request.ranges) m.discardBytes += r.numSectors * SECTOR_SIZE;
        break;
      case 'write-zeroes':
        m.requests.writeZeroes++;
        for (const r of request.ranges) m.writeZeroesBytes += r.numSectors * SECTOR_SIZE;
        break;
    }
  }
}
