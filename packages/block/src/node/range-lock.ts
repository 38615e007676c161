/**
 * Orders writes whose byte ranges overlap: each waits for every earlier overlapping holder to
 * finish. With O_DIRECT, an unaligned write is a read-modify-write of whole logical blocks; two
 * such writes (or one and an aligned write) touching the same block would otherwise lose one
 * update. Writes to disjoint ranges run concurrently; overlapping ones complete in issue order.
 */
interface Holder {
  readonly start: number;
  readonly end: number;
  readonly done: Promise<void>;
}

export class RangeLock {
  readonly #holders = new Set<Holder>();

  /** Waits for earlier overlapping holders of [start, end), then holds it; call the result to release. */
  async acquire(start: number, end: number): Promise<() => void> {
    const waits: Promise<void>[] = [];
    for (const h of this.#holders) if (h.start < end && start < h.end) waits.push(h.done);
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const holder: Holder = { start, end, done };
    this.#holders.add(holder);
    if (waits.length > 0) await Promise.all(waits);
    return () => {
      this.#holders.delete(holder);
      release();
    };
  }

  /** Number of current holders (waiting or running). */
  get size(): number {
    return this.#holders.size;
  }
}
