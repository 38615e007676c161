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
  readFrom(memory, segments, 0, destination);
}

/** Copies `source` into `segments`, in order; returns the bytes written. */
export function scatter(memory: GuestMemory, segments: readonly Segment[], source: Uint8Array): number {
  return writeTo(memory, segments, 0, source);
}

/**
 * Zero-copy views over `segments`, one per segment, or more where a segment spans two adjacent
 * regions. Each view aliases guest memory: writing it writes the guest.
 */
export function segmentViews(memory: GuestMemory, segments: readonly Segment[]): Uint8Array[] {
  return viewsFrom(memory, segments, 0, []);
}

// The offset forms below allocate nothing per call (the net device's per-frame hot path): the
// header and the frame may be split anywhere (§5.1.6, H7, H14).

/** Copies `destination.length` bytes starting `skip` bytes into `segments`; false when they run out. */
export function readFrom(memory: GuestMemory, segments: readonly Segment[], skip: number, destination: Uint8Array): boolean {
  let done = 0;
  const want = destination.length;
  for (let i = 0; i < segments.length && done < want; i++) {
    const s = segments[i]!;
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    const n = Math.min(s.length - skip, want - done);
    memory.read(s.address + skip, n === want && done === 0 ? destination : destination.subarray(done, done + n));
    done += n;
    skip = 0;
  }
  return done === want;
}

/** Writes `source` starting `skip` bytes into `segments`; returns the bytes written (less when they run out). */
export function writeTo(memory: GuestMemory, segments: readonly Segment[], skip: number, source: Uint8Array): number {
  let done = 0;
  const want = source.length;
  for (let i = 0; i < segments.length && done < want; i++) {
    const s = segments[i]!;
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    const n = Math.min(s.length - skip, want - done);
    memory.write(s.address + skip, n === want && done === 0 ? source : source.subarray(done, done + n));
    done += n;
    skip = 0;
  }
  return done;
}

/**
 * Fills `out` (emptied first) with zero-copy views of `segments` from byte `skip` on: one per
 * segment, more where a segment spans two adjacent memory regions. The views alias guest memory.
 */
export function viewsFrom(memory: GuestMemory, segments: readonly Segment[], skip: number, out: Uint8Array[]): Uint8Array[] {
  out.length = 0;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    let address = s.address + skip;
    let left = s.length - skip;
    skip = 0;
    while (left > 0) {
      const region = memory.regionFor(address, 1, 'segment view');
      const n = Math.min(left, region.end - address);
      out.push(memory.slice(address, n));
      address += n;
      left -= n;
    }
  }
  return out;
}

/** Sum of the lengths. */
export function totalLength(segments: readonly Segment[]): number {
  let total = 0;
  for (const s of segments) total += s.length;
  return total;
}
