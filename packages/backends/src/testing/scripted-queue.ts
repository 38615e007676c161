import { RingError, NO_FEATURES, type DescriptorChain, type DeviceQueue, type QueueState, type UsedElement } from '@virtio-ts/ring';

/**
 * A DeviceQueue driven by a test: chains (or ring errors) are queued with `offer`, `pop` hands
 * them out, `pushUsed` records completions. It checks the device's side of the contract: a
 * head may be returned once, only after it was popped.
 */
export class ScriptedQueue implements DeviceQueue {
  readonly layout = 'split' as const;
  readonly features = NO_FEATURES;
  broken = false;
  readonly used: UsedElement[] = [];
  notificationsEnabled = true;
  private readonly script: (DescriptorChain | RingError)[] = [];
  private readonly heldHeads = new Set<number>();

  /** Heads popped and not yet returned. */
  get inFlight(): number {
    return this.heldHeads.size;
  }
  private pushedSinceCheck = false;

  constructor(readonly size = 256) {}

  /** Queues a chain (or an error that `pop` will throw). */
  offer(item: DescriptorChain | RingError): void {
    this.script.push(item);
  }

  pop(): DescriptorChain | null {
    if (this.broken) throw new RingError('QUEUE_BROKEN', 'broken', {}, { fatal: true });
    const next = this.script.shift();
    if (next === undefined) return null;
    if (next instanceof RingError) {
      if (next.fatal) this.broken = true;
      else if (next.context.head !== undefined) this.heldHeads.add(next.context.head);
      throw next;
    }
    if (this.heldHeads.has(next.head)) throw new RingError('HEAD_IN_FLIGHT', 'head in flight', { head: next.head }, { fatal: true });
    this.heldHeads.add(next.head);
    return next;
  }

  /** Chains (and errors) offered and not popped yet. */
  get available(): number {
    return this.script.length;
  }

  hasAvailable(): boolean {
    return this.script.length > 0;
  }

  pushUsed(head: number, length: number): void {
    if (!this.heldHeads.has(head)) throw new RingError('INVALID_USED', 'head not in flight', { head }, { fatal: true });
    this.heldHeads.delete(head);
    this.used.push({ head, length });
    this.pushedSinceCheck = true;
  }

  pushUsedBatch(elements: readonly UsedElement[]): void {
    for (const e of elements) this.pushUsed(e.head, e.length);
  }

  needsNotification(): boolean {
    const n = this.pushedSinceCheck;
    this.pushedSinceCheck = false;
    return n;
  }

  disableNotification(): void {
    this.notificationsEnabled = false;
  }

  enableNotification(): boolean {
    this.notificationsEnabled = true;
    return this.script.length > 0;
  }

  reset(): void {
    this.script.length = 0;
    this.heldHeads.clear();
    this.used.length = 0;
    this.broken = false;
  }

  saveState(): QueueState {
    return {
      version: 1,
      layout: 'split',
      ring: { size: this.size, descTable: 0, availRing: 0, usedRing: 0 },
      features: NO_FEATURES,
      nextAvail: 0,
      nextUsed: this.used.length & 0xffff,
      inFlight: [...this.heldHeads],
      broken: this.broken,
    };
  }

  /** Heads popped and not returned. */
  get pending(): number[] {
    return [...this.heldHeads];
  }
}
