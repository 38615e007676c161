import type { GuestMemory } from '@virtio-ts/memory';
import type { Segment } from '@virtio-ts/ring';

/**
 * Helpers that treat a chain's readable or writable segments as one byte stream, whatever the
 * guest's framing (VIRTIO 1.3 §2.6.4: the device MUST NOT assume a particular layout of
 * descriptors). Segments come from the ring, which validated them against guest memory.
 */

/** The segments covering bytes `[start, start + length)` of the concatenation of `segments`. */
export function sliceSegments(segments: readonly Segment[], start: number, length: number): Segment[] {
  const out: Segment[] = [];
  let skip = start;
  let left = length;
  for (const s of segments) {
    if (left === 0) break;
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    const n = Math.min(s.length - skip, left);
    if (n > 0) out.push({ address: s.address + skip, length: n });
    skip = 0;
    left -= n;
  }
  return out;
}

/** Copies the bytes of `segments` into `destination` (which has their total length or less). */
export function gather(memory: GuestMemory, segments: readonly Segment[], destination: Uint8Array): void {
  let done = 0;
  for (const s of segments) {
    if (done >= destination.length) break;
    const n = Math.min(s.length, destination.length - done);
    memory.read(s.address, destination.subarray(done, done + n));
    done += n;
  }
}

/** Copies `source` into `segments`, in order; returns the bytes written. */
export function scatter(memory: GuestMemory, segments: readonly Segment[], source: Uint8Array): number {
  let done = 0;
  for (const s of segments) {
    if (done >= source.length) break;
    const n = Math.min(s.length, source.length - done);
    memory.write(s.address, source.subarray(done, done + n));
    done += n;
  }
  return done;
}

/**
 * Zero-copy views over `segments`, one per segment, or more where a segment spans two adjacent
 * regions. Each view aliases guest memory: writing it writes the guest.
 */
export function segmentViews(memory: GuestMemory, segments: readonly Segment[]): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (const s of segments) {
    let address = s.address;
    let left = s.length;
    while (left > 0) {
      const region = memory.regionFor(address, 1, 'segmentViews');
      const n = Math.min(left, region.end - address);
      views.push(memory.slice(address, n));
      address += n;
      left -= n;
    }
  }
  return views;
}

/** Sum of the lengths. */
export function totalLength(segments: readonly Segment[]): number {
  let total = 0;
  for (const s of segments) total += s.length;
  return total;
}
