import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain, Segment } from '@virtio-ts/ring';

/**
 * Builds DescriptorChains by hand in guest memory, as a hostile or sloppy driver would: any
 * split of the bytes into segments, with guard gaps between buffers so that a write past a
 * segment shows up.
 */
export class ChainBuilder {
  private next: number;
  private head = 0;

  constructor(
    readonly memory: GuestMemory,
    base = 0x10000,
    /** Bytes left untouched between buffers (filled with 0xEE to detect overruns). */
    readonly guard = 16,
  ) {
    this.next = base;
  }

  /** Places `bytes` in guest memory split into segments of the given sizes (default: one segment). */
  place(bytes: Uint8Array, split: readonly number[] = [bytes.length]): Segment[] {
    const segments: Segment[] = [];
    let done = 0;
    for (const size of split) {
      const address = this.alloc(size);
      this.memory.write(address, bytes.subarray(done, done + size));
      segments.push({ address, length: size });
      done += size;
    }
    if (done !== bytes.length) throw new Error(`split ${split.join('+')} does not cover ${bytes.length} bytes`);
    return segments;
  }

  /** Reserves writable space of the given segment sizes, pre-filled with `fill`. */
  reserve(split: readonly number[], fill = 0xcc): Segment[] {
    return split.map((size) => {
      const address = this.alloc(size);
      this.memory.fill(address, size, fill);
      return { address, length: size };
    });
  }

  /** A chain from readable then writable segments; heads count up unless given. */
  chain(readable: readonly Segment[], writable: readonly Segment[], head?: number): DescriptorChain {
    const sum = (s: readonly Segment[]) => s.reduce((n, x) => n + x.length, 0);
    return {
      head: head ?? this.head++,
      readable,
      writable,
      readableLength: sum(readable),
      writableLength: sum(writable),
      descriptorCount: readable.length + writable.length,
    };
  }

  /** Reads the bytes of segments back. */
  bytesOf(segments: readonly Segment[]): Uint8Array {
    const total = segments.reduce((n, s) => n + s.length, 0);
    const out = new Uint8Array(total);
    let done = 0;
    for (const s of segments) {
      this.memory.read(s.address, out.subarray(done, done + s.length));
      done += s.length;
    }
    return out;
  }

  /** True when every guard byte is still 0xEE. */
  guardsIntact(): boolean {
    for (const address of this.guards) {
      const bytes = new Uint8Array(this.guard);
      this.memory.read(address, bytes);
      if (bytes.some((b) => b !== 0xee)) return false;
    }
    return true;
  }

  private readonly guards: number[] = [];

  private alloc(size: number): number {
    const address = this.next;
    this.next += size;
    this.memory.fill(this.next, this.guard, 0xee);
    this.guards.push(this.next);
    this.next += this.guard;
    return address;
  }
}
