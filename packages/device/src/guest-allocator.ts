import { isValidRange } from '@virtio-ts/memory';
import type { GuestMemory } from '@virtio-ts/memory';
import { DeviceError } from './errors.js';

/** Allocates guest-physical ranges for rings and buffers (driver side). */
export interface GuestAllocator {
  /** Guest memory the ranges belong to. */
  readonly memory: GuestMemory;
  /** A free range of `length` bytes aligned to `alignment` (a power of two). Throws OUT_OF_MEMORY. */
  allocate(length: number, alignment?: number): number;
  /** Returns a range from `allocate`. Throws INVALID_ARGUMENT for an address it did not hand out. */
  free(address: number): void;
}

interface FreeBlock {
  start: number;
  end: number;
}

/**
 * A first-fit free-list allocator over `[base, base + length)` of a {@link GuestMemory}, with
 * coalescing on free. The range must be mapped. O(free blocks) per call: rings and driver
 * buffers are few and long-lived.
 *
 * @example
 * ```ts
 * const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
 * const allocator = new GuestMemoryAllocator(memory, 0x1000, 0x10000);
 * const ring = allocator.allocate(4096, 4096); // 0x1000
 * allocator.free(ring);
 * ```
 */
export class GuestMemoryAllocator implements GuestAllocator {
  readonly memory: GuestMemory;
  readonly base: number;
  readonly length: number;
  private freeList: FreeBlock[];
  private readonly allocated = new Map<number, number>();

  constructor(memory: GuestMemory, base: number, length: number) {
    if (!isValidRange(base, length) || length === 0 || !memory.isMapped(base, length)) {
      throw new DeviceError('INVALID_ARGUMENT', 'allocator range must be non-empty and backed by guest memory', { address: base, size: length });
    }
    this.memory = memory;
    this.base = base;
    this.length = length;
    this.freeList = [{ start: base, end: base + length }];
  }

  /** Bytes currently free (possibly fragmented). */
  get freeBytes(): number {
    let total = 0;
    for (const block of this.freeList) total += block.end - block.start;
    return total;
  }

  allocate(length: number, alignment = 8): number {
    if (!Number.isSafeInteger(length) || length <= 0) throw new DeviceError('INVALID_ARGUMENT', 'allocation length must be a positive integer', { size: length });
    if (!Number.isSafeInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      throw new DeviceError('INVALID_ARGUMENT', 'alignment must be a power of two', { size: alignment });
    }
    for (let i = 0; i < this.freeList.length; i++) {
      const block = this.freeList[i]!;
      const start = Math.ceil(block.start / alignment) * alignment;
      const end = start + length;
      if (end > block.end) continue;
      const replacement: FreeBlock[] = [];
      if (start > block.start) replacement.push({ start: block.start, end: start });
      if (end < block.end) replacement.push({ start: end, end: block.end });
      this.freeList.splice(i, 1, ...replacement);
      this.allocated.set(start, length);
      return start;
    }
    throw new DeviceError('OUT_OF_MEMORY', `no free range of ${length} bytes aligned to ${alignment}`, { size: length });
  }

  free(address: number): void {
    const length = this.allocated.get(address);
    if (length === undefined) throw new DeviceError('INVALID_ARGUMENT', 'address was not allocated here', { address });
    this.allocated.delete(address);
    const block: FreeBlock = { start: address, end: address + length };
    let i = 0;
    while (i < this.freeList.length && this.freeList[i]!.start < block.start) i++;
    this.freeList.splice(i, 0, block);
    // Coalesce with the neighbours.
    const next = this.freeList[i + 1];
    if (next !== undefined && next.start === block.end) {
      block.end = next.end;
      this.freeList.splice(i + 1, 1);
    }
    const previous = this.freeList[i - 1];
    if (previous !== undefined && previous.end === block.start) {
      previous.end = block.end;
      this.freeList.splice(i, 1);
    }
  }
}
