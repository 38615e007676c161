import type { GuestAllocator } from '@virtio-ts/device';
import type { Segment } from '@virtio-ts/ring';

/**
 * A driver buffer in guest memory (the "DMA" memory a real driver would map), from the
 * transport's allocator. Free it when the device has returned the request.
 */
export class DmaBuffer {
  readonly address: number;

  constructor(
    private readonly allocator: GuestAllocator,
    readonly length: number,
    alignment = 8,
  ) {
    this.address = allocator.allocate(Math.max(1, length), alignment);
  }

  /** The buffer as one segment, or as segments of at most `maxSegment` bytes. */
  segments(maxSegment = Number.POSITIVE_INFINITY, offset = 0, length = this.length - offset): Segment[] {
    const out: Segment[] = [];
    for (let at = 0; at < length; at += maxSegment) out.push({ address: this.address + offset + at, length: Math.min(maxSegment, length - at) });
    return out;
  }

  write(bytes: Uint8Array, offset = 0): void {
    this.allocator.memory.write(this.address + offset, bytes);
  }

  read(offset = 0, length = this.length - offset): Uint8Array {
    const out = new Uint8Array(length);
    this.allocator.memory.read(this.address + offset, out);
    return out;
  }

  free(): void {
    this.allocator.free(this.address);
  }
}
