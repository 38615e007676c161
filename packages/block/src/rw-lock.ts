/**
 * A fair (FIFO) asynchronous reader–writer lock.
 *
 * Shared holders run concurrently; an exclusive holder runs alone. Waiters are served in arrival
 * order: once an exclusive waiter is queued, later shared requests queue behind it, so a stream of
 * reads cannot starve a metadata update. Not re-entrant: calling `exclusive` from inside a holder
 * of the same lock deadlocks.
 */
export class RwLock {
  #shared = 0;
  #exclusive = false;
  readonly #queue: { exclusive: boolean; grant: () => void }[] = [];

  /** Runs `fn` while holding the lock shared (concurrently with other shared holders). */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(false);
    try {
      return await fn();
    } finally {
      this.#shared--;
      this.#drain();
    }
  }

  /** Runs `fn` while holding the lock exclusively. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(true);
    try {
      return await fn();
    } finally {
      this.#exclusive = false;
      this.#drain();
    }
  }

  /** True when nobody holds or waits for the lock. */
  get idle(): boolean {
    return !this.#exclusive && this.#shared === 0 && this.#queue.length === 0;
  }

  #acquire(exclusive: boolean): Promise<void> {
    if (this.#queue.length === 0 && !this.#exclusive && (exclusive ? this.#shared === 0 : true)) {
      if (exclusive) this.#exclusive = true;
      else this.#shared++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.#queue.push({ exclusive, grant: resolve });
    });
  }

  #drain(): void {
    while (this.#queue.length > 0 && !this.#exclusive) {
      const next = this.#queue[0]!;
      if (next.exclusive) {
        if (this.#shared > 0) return;
        this.#queue.shift();
        this.#exclusive = true;
        next.grant();
        return;
      }
      this.#queue.shift();
      this.#shared++;
      next.grant();
    }
  }
}

/**
 * A FIFO asynchronous mutex for short critical sections (the qcow2 metadata lock that allocating
 * writes take inside their shared hold of the image lock). Not re-entrant.
 */
export class Mutex {
  #held = false;
  readonly #queue: (() => void)[] = [];

  /** Runs `fn` alone among the holders of this mutex. */
  async run<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.#held || this.#queue.length > 0) await new Promise<void>((grant) => this.#queue.push(grant));
    else this.#held = true;
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      if (next === undefined) this.#held = false;
      else next();
    }
  }

  /** True when nobody holds or waits for the mutex. */
  get idle(): boolean {
    return !this.#held && this.#queue.length === 0;
  }
}
