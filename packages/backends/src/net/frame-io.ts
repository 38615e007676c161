// Byte-stream access to a chain's segments at an offset, without allocating per call (the hot
// path of every frame). VIRTIO 1.3 §2.7.4 / §5.1.6: the device MUST NOT assume a descriptor
// layout, so the header and the frame may be split anywhere (H7, H14).
import type { GuestMemory } from '@virtio-ts/memory';
import type { Segment } from '@virtio-ts/ring';

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
      const region = memory.regionFor(address, 1, 'net frame');
      const n = Math.min(left, region.end - address);
      out.push(memory.slice(address, n));
      address += n;
      left -= n;
    }
  }
  return out;
}
