import { RingError, type DescriptorChain, type DeviceQueue } from '@virtio-ts/ring';
import type { ActivationContext } from '@virtio-ts/device';
import { clearTimer, setTimer } from './web-apis.js';

/** What a {@link QueueRunner} reports to its device's metrics. */
export interface QueueRunnerEvents {
  /** A chain the ring rejected (counted whether or not it was fatal). */
  ringError(error: unknown): void;
  /** The runner gave up on the device: DEVICE_NEEDS_RESET was requested. */
  needsReset(reason: string): void;
  /** An interrupt was sent for this queue. */
  interrupt(): void;
}

/**
 * The part of every device loop that has nothing to do with the device type (VIRTIO 1.3 §2.7.10,
 * §2.7.13): drain the available ring with notifications disabled, re-enable them and re-check
 * (the race of §2.7.10), return every popped head with `pushUsed` — even with length 0 — and
 * turn a broken ring into DEVICE_NEEDS_RESET. Nothing thrown by the guest's ring escapes.
 */
export class QueueRunner {
  /** True once the device was marked broken; the runner then ignores the queue. */
  broken = false;
  /** True after {@link detach} (device reset): the runner touches nothing any more. */
  detached = false;
  private resumeTimer: unknown = undefined;

  constructor(
    readonly index: number,
    readonly queue: DeviceQueue,
    private readonly context: Pick<ActivationContext, 'interrupt' | 'markNeedsReset'>,
    private readonly events: QueueRunnerEvents,
    /**
     * Called (from a timer) to continue a drain that stopped after {@link yieldAfter} chains, so
     * that a guest keeping the ring always full cannot hold the thread (H17).
     */
    private readonly resume?: () => void,
    /** Chains handed out by one `drain` before it yields. Default: four times the queue size. */
    readonly yieldAfter = queue.size * 4,
  ) {}

  /** Stops the runner for good (device reset): pending resumes are cancelled. */
  detach(): void {
    this.detached = true;
    if (this.resumeTimer !== undefined) clearTimer(this.resumeTimer);
    this.resumeTimer = undefined;
  }

  /**
   * Pops every available chain and hands it to `handle`, which must eventually call
   * {@link complete} for it. Returns when the ring is empty, when `limit` chains were handed out,
   * when `handle` returned false (back-pressure), or after {@link yieldAfter} chains (then it
   * schedules `resume`).
   */
  drain(handle: (chain: DescriptorChain) => boolean | void, limit = Number.POSITIVE_INFINITY): void {
    if (this.broken || this.detached) return;
    let handed = 0;
    for (;;) {
      this.queue.disableNotification();
      for (;;) {
        if (handed >= limit) return;
        if (handed >= this.yieldAfter && this.resume !== undefined) {
          this.scheduleResume();
          return;
        }
        const chain = this.pop();
        if (chain === undefined) return; // broken
        if (chain === null) break;
        handed++;
        if (handle(chain) === false) return;
      }
      // §2.7.10: re-enable, then look again: the driver may have added buffers meanwhile.
      if (!this.enableNotification()) return;
    }
  }

  private scheduleResume(): void {
    if (this.resumeTimer !== undefined) return;
    this.resumeTimer = setTimer(() => {
      this.resumeTimer = undefined;
      if (!this.detached && !this.broken) this.resume?.();
    }, 0);
  }

  /** The next chain, null when empty, or undefined when the device had to be marked broken. */
  pop(): DescriptorChain | null | undefined {
    if (this.broken || this.detached) return undefined;
    for (;;) {
      try {
        return this.queue.pop();
      } catch (error) {
        this.events.ringError(error);
        if (RingError.isInstance(error) && !error.fatal && error.context.head !== undefined) {
          // The chain alone was bad: give its head back with nothing written (CH #8401).
          if (!this.pushUsed(error.context.head, 0)) return undefined;
          continue;
        }
        this.fail(`queue ${this.index}: ${error instanceof Error ? error.message : String(error)}`);
        return undefined;
      }
    }
  }

  /** Returns `head` with `length` bytes written and interrupts the driver if the ring asks for it. */
  complete(head: number, length: number): void {
    if (!this.pushUsed(head, length)) return;
    this.signalIfNeeded();
  }

  /** pushUsed that marks the device broken instead of throwing; false when it failed. */
  pushUsed(head: number, length: number): boolean {
    if (this.broken || this.detached) return false;
    try {
      this.queue.pushUsed(head, length);
      return true;
    } catch (error) {
      this.fail(`queue ${this.index}: cannot return head ${head}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }

  /** Sends a used buffer notification when the ring's suppression rules ask for one. */
  signalIfNeeded(): void {
    if (this.broken || this.detached) return;
    let notify: boolean;
    try {
      notify = this.queue.needsNotification();
    } catch (error) {
      this.fail(`queue ${this.index}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (notify) {
      this.events.interrupt();
      this.context.interrupt.signalQueue(this.index);
    }
  }

  /** Marks the device DEVICE_NEEDS_RESET (§2.1.2) once. */
  fail(reason: string): void {
    if (this.broken || this.detached) return;
    this.broken = true;
    this.events.needsReset(reason);
    this.context.markNeedsReset(reason);
  }

  private enableNotification(): boolean {
    try {
      return this.queue.enableNotification();
    } catch (error) {
      this.fail(`queue ${this.index}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
  }
}
