// RFC 826 translation table with RFC 1122 §2.3.2.1 expiry ("MUST provide a mechanism to flush
// out-of-date cache entries") and §2.3.2.2 queueing ("SHOULD save at least one (the latest)
// packet of every set of packets destined to the same unresolved IP address").
import type { MacAddress } from './addresses.js';

/** A packet waiting for its next hop's MAC address. */
export interface PendingSend {
  deliver(mac: MacAddress): void;
  fail(error: unknown): void;
}

/** Options of {@link ArpCache}. */
export interface ArpCacheOptions {
  /** Lifetime of a learnt entry; default 60 s. */
  readonly ttlMs?: number;
  /** Resolved entries kept; the oldest is evicted beyond it. Default 256. */
  readonly maxEntries?: number;
  /** Packets queued per unresolved address; the oldest is failed beyond it. Default 16. */
  readonly maxPending?: number;
  readonly now: () => number;
}

interface Resolved {
  readonly mac: MacAddress;
  readonly expiresAt: number;
}

/**
 * IPv4 → MAC table with expiry, and the queue of packets waiting while an address resolves.
 * Pure bookkeeping: the interface sends requests and runs the retry timers.
 */
export class ArpCache {
  private readonly resolved = new Map<number, Resolved>();
  private readonly pending = new Map<number, PendingSend[]>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxPending: number;
  private readonly now: () => number;

  constructor(options: ArpCacheOptions) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxEntries = options.maxEntries ?? 256;
    this.maxPending = options.maxPending ?? 16;
    this.now = options.now;
  }

  /** The MAC of `ip` if known and not expired (an expired entry is flushed). */
  lookup(ip: number): MacAddress | undefined {
    const entry = this.resolved.get(ip);
    if (entry === undefined) return undefined;
    if (this.now() >= entry.expiresAt) {
      this.resolved.delete(ip);
      return undefined;
    }
    return entry.mac;
  }

  /** True when `ip` has a live entry. */
  has(ip: number): boolean {
    return this.lookup(ip) !== undefined;
  }

  /**
   * RFC 826 "merge": records `ip` → `mac` when an entry exists (or is being resolved), or when
   * `create` (the packet was addressed to us). Delivers the packets waiting for it. Returns
   * whether the table was updated.
   */
  learn(ip: number, mac: MacAddress, create: boolean): boolean {
    const waiting = this.pending.get(ip);
    if (!create && waiting === undefined && !this.resolved.has(ip)) return false;
    this.resolved.delete(ip); // re-insert: Map order is the eviction order
    this.resolved.set(ip, { mac: mac.slice(0, 6), expiresAt: this.now() + this.ttlMs });
    while (this.resolved.size > this.maxEntries) this.resolved.delete(this.resolved.keys().next().value!);
    if (waiting !== undefined) {
      this.pending.delete(ip);
      for (const send of waiting) send.deliver(mac);
    }
    return true;
  }

  /** Queues a packet for `ip`; returns true when this starts a resolution (send a request). */
  enqueue(ip: number, send: PendingSend, overflow: () => unknown): boolean {
    const waiting = this.pending.get(ip);
    if (waiting === undefined) {
      this.pending.set(ip, [send]);
      return true;
    }
    waiting.push(send);
    if (waiting.length > this.maxPending) waiting.shift()!.fail(overflow());
    return false;
  }

  /** True while `ip` is being resolved. */
  isResolving(ip: number): boolean {
    return this.pending.has(ip);
  }

  /** Resolution of `ip` gave up: fails its waiting packets. */
  fail(ip: number, error: unknown): void {
    const waiting = this.pending.get(ip);
    this.pending.delete(ip);
    for (const send of waiting ?? []) send.fail(error);
  }

  /** Forgets everything, failing every waiting packet. */
  clear(error: unknown): void {
    for (const ip of [...this.pending.keys()]) this.fail(ip, error);
    this.resolved.clear();
  }

  /** Number of live resolved entries (expired ones are flushed first). */
  get size(): number {
    for (const ip of [...this.resolved.keys()]) this.lookup(ip);
    return this.resolved.size;
  }
}
