/**
 * Page-aligned bounce buffers for O_DIRECT I/O (cache=none): requests whose offset, length or
 * memory are not aligned to the file's logical block size are copied through one of these.
 * Buffers come from anonymous mmap regions in power-of-two size classes (64 KiB and up) and are
 * kept on a free list up to `maxCachedBytes`; larger leftovers are unmapped at once.
 */
import { mapAnonymous, type AlignedRegion } from './libc-file.js';

const MIN_CLASS = 64 * 1024;

/** A lease on an aligned buffer; `release` returns it to the pool. */
export interface AlignedLease {
  /** Aligned bytes, at least the requested length (a view of exactly that length). */
  readonly bytes: Uint8Array;
  release(): void;
}

export class AlignedPool {
  readonly #free = new Map<number, AlignedRegion[]>();
  readonly #maxCachedBytes: number;
  #cachedBytes = 0;
  #closed = false;

  constructor(maxCachedBytes = 8 * 1024 * 1024) {
    this.#maxCachedBytes = maxCachedBytes;
  }

  /** Leases a page-aligned buffer of `length` bytes (contents unspecified). */
  take(length: number): AlignedLease {
    let size = MIN_CLASS;
    while (size < length) size *= 2;
    const cached = this.#free.get(size)?.pop();
    if (cached !== undefined) this.#cachedBytes -= size;
    const region = cached ?? mapAnonymous(size);
    let released = false;
    return {
      bytes: new Uint8Array(region.buffer, 0, length),
      release: () => {
        if (released) return;
        released = true;
        this.#give(size, region);
      },
    };
  }

  /** Unmaps every cached buffer; leases still out are unmapped when released. */
  close(): void {
    this.#closed = true;
    for (const list of this.#free.values()) for (const region of list) region.free();
    this.#free.clear();
    this.#cachedBytes = 0;
  }

  #give(size: number, region: AlignedRegion): void {
    if (this.#closed || this.#cachedBytes + size > this.#maxCachedBytes) {
      region.free();
      return;
    }
    let list = this.#free.get(size);
    if (list === undefined) this.#free.set(size, (list = []));
    list.push(region);
    this.#cachedBytes += size;
  }
}
