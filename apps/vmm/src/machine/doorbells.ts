import type { AccessSize, GuestBus } from './bus.js';
import type { AttentionWord } from './exit-mailbox.js';

/**
 * One ioeventfd registration: a guest write of `size` bytes to `address` — with `datamatch`, of
 * exactly that value — rings doorbell `slot` instead of exiting. virtio-pci gives each queue its
 * own notify address; virtio-mmio shares QueueNotify and tells queues apart by the value.
 */
export interface DoorbellRegistration {
  readonly address: number;
  readonly size: AccessSize;
  readonly datamatch?: number;
  readonly slot: number;
}

/** Most doorbells a machine has: 32 devices × 16 queues fit, and it bounds the shared table. */
export const MAX_DOORBELLS = 1024;
// Table layout (Int32 words): [generation, count, then per entry: addressLow, addressHigh, size, hasDatamatch, datamatch, slot].
const ENTRY_WORDS = 6;
const HEADER_WORDS = 2;
/** Bytes of the shared ioeventfd table. */
export const DOORBELL_TABLE_BYTES = (HEADER_WORDS + MAX_DOORBELLS * ENTRY_WORDS) * 4;

/**
 * The VMM's side of the ioeventfd table (KVM_IOEVENTFD): it rewrites the table whenever a BAR moves
 * or memory decoding changes, always while the vCPU that caused it is stopped in an exit, and bumps
 * the generation so every vCPU reloads its copy before its next write.
 */
export class DoorbellTable {
  readonly words: Int32Array;
  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
  }
  static create(): DoorbellTable {
    return new DoorbellTable(new SharedArrayBuffer(DOORBELL_TABLE_BYTES));
  }

  /** Replaces every registration. */
  publish(registrations: readonly DoorbellRegistration[]): void {
    const w = this.words;
    const count = Math.min(registrations.length, MAX_DOORBELLS);
    for (let i = 0; i < count; i++) {
      const r = registrations[i]!;
      const at = HEADER_WORDS + i * ENTRY_WORDS;
      w[at] = r.address % 2 ** 32 | 0;
      w[at + 1] = Math.floor(r.address / 2 ** 32) | 0;
      w[at + 2] = r.size;
      w[at + 3] = r.datamatch === undefined ? 0 : 1;
      w[at + 4] = (r.datamatch ?? 0) | 0;
      w[at + 5] = r.slot;
    }
    w[1] = count;
    Atomics.add(w, 0, 1); // publishes the entries (seq-cst)
  }

  get generation(): number {
    return Atomics.load(this.words, 0);
  }

  /** The registrations as last published. */
  read(): DoorbellRegistration[] {
    const w = this.words;
    const count = Math.min(Atomics.load(w, 1), MAX_DOORBELLS);
    const result: DoorbellRegistration[] = [];
    for (let i = 0; i < count; i++) {
      const at = HEADER_WORDS + i * ENTRY_WORDS;
      const address = (w[at]! >>> 0) + (w[at + 1]! >>> 0) * 2 ** 32;
      const entry = { address, size: w[at + 2]! as AccessSize, slot: w[at + 5]! };
      result.push(w[at + 3] === 1 ? { ...entry, datamatch: w[at + 4]! >>> 0 } : entry);
    }
    return result;
  }
}

/**
 * The guest side of ioeventfd: a bus that turns registered notify writes into a doorbell (a word
 * per queue: `Atomics.add`, then the VMM's attention word) and sends every other access on.
 */
export class DoorbellBus implements GuestBus {
  private byAddress = new Map<number, DoorbellRegistration[]>();
  private generation = -1;
  /** Notify writes that rang a doorbell instead of exiting. */
  doorbells = 0;

  constructor(
    private readonly inner: GuestBus,
    private readonly table: DoorbellTable,
    private readonly words: Int32Array,
    private readonly attention: AttentionWord,
  ) {}

  read(address: number, size: AccessSize): number {
    return this.inner.read(address, size);
  }

  write(address: number, size: AccessSize, value: number): void {
    if (this.table.generation !== this.generation) this.reload();
    const list = this.byAddress.get(address);
    if (list !== undefined) {
      for (const r of list) {
        if (r.size === size && (r.datamatch === undefined || r.datamatch === value >>> 0)) {
          this.doorbells++;
          Atomics.add(this.words, r.slot, 1);
          this.attention.ring();
          return;
        }
      }
    }
    this.inner.write(address, size, value);
  }

  private reload(): void {
    this.generation = this.table.generation;
    const map = new Map<number, DoorbellRegistration[]>();
    for (const r of this.table.read()) {
      const list = map.get(r.address) ?? [];
      list.push(r);
      map.set(r.address, list);
    }
    this.byAddress = map;
  }
}

/**
 * The VMM side: for every doorbell rung since the last call, calls `handler(slot)` once (several
 * rings of one doorbell coalesce into one notification, as an eventfd counter does).
 */
export function drainDoorbells(words: Int32Array, slots: number, handler: (slot: number) => void): number {
  let rung = 0;
  for (let slot = 0; slot < slots; slot++) {
    if (Atomics.load(words, slot) === 0 || Atomics.exchange(words, slot, 0) === 0) continue;
    rung++;
    handler(slot);
  }
  return rung;
}
