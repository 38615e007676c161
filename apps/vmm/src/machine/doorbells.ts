import type { AccessSize, GuestBus } from './bus.js';
import type { AttentionWord } from './exit-mailbox.js';

/**
 * One ioeventfd registration: a guest write of `size` bytes to `address` (and, with `datamatch`,
 * of exactly that value) rings doorbell `slot` instead of exiting. virtio-pci gives each queue
 * its own notify address; virtio-mmio shares QueueNotify and tells queues apart by the value.
 */
export interface DoorbellRegistration {
  readonly address: number;
  readonly datamatch?: number;
  readonly slot: number;
}

/** Most doorbells a machine has: 32 devices × (16 queues + 1) is plenty, and it bounds the table. */
export const MAX_DOORBELLS = 1024;

/**
 * The guest side of ioeventfd: a bus that turns registered notify writes into a doorbell (a
 * word per queue, `Atomics.add` + the VMM's attention word) and sends every other access on.
 */
export class DoorbellBus implements GuestBus {
  private readonly byAddress = new Map<number, DoorbellRegistration[]>();
  /** Notify writes that rang a doorbell instead of exiting. */
  doorbells = 0;

  constructor(
    private readonly inner: GuestBus,
    private readonly words: Int32Array,
    private readonly attention: AttentionWord,
    registrations: readonly DoorbellRegistration[],
  ) {
    for (const r of registrations) {
      const list = this.byAddress.get(r.address) ?? [];
      list.push(r);
      this.byAddress.set(r.address, list);
    }
  }

  read(address: number, size: AccessSize): number {
    return this.inner.read(address, size);
  }

  write(address: number, size: AccessSize, value: number): void {
    const list = this.byAddress.get(address);
    if (list !== undefined) {
      for (const r of list) {
        if (r.datamatch === undefined || r.datamatch === value) {
          this.doorbells++;
          Atomics.add(this.words, r.slot, 1);
          this.attention.ring();
          return;
        }
      }
    }
    this.inner.write(address, size, value);
  }
}

/**
 * The VMM side: for every doorbell rung since the last call, calls `handler(slot)` once (several
 * rings of one doorbell coalesce into one notification, as an eventfd counter does).
 */
export function drainDoorbells(words: Int32Array, slots: number, handler: (slot: number) => void): number {
  let rung = 0;
  for (let slot = 0; slot < slots; slot++) {
    if (Atomics.load(words, slot) === 0) continue;
    Atomics.store(words, slot, 0);
    rung++;
    handler(slot);
  }
  return rung;
}
