// The bare baseline: the same memory operations as a split ring round trip (descriptors, avail
// entry and idx, used element and idx; Atomics on the two index words only, as our rings do),
// as a flat loop over typed arrays with no abstraction, no validation and no free list.

/** Word offsets of a split ring of `size` laid out from byte 0 (as splitQueueLayout(size, 0)). */
export interface FlatRing {
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly size: number;
  /** u16 index of avail.flags, avail.idx, avail.ring[0]. */
  readonly availFlags: number;
  readonly availIdx: number;
  readonly availRing: number;
  /** u16 index of used.flags, used.idx; u32 index of used.ring[0]. */
  readonly usedFlags: number;
  readonly usedIdx: number;
  readonly usedRing32: number;
}

export function flatRing(buffer: SharedArrayBuffer, size: number): FlatRing {
  const availRing = 16 * size;
  const usedRing = Math.ceil((availRing + 6 + 2 * size) / 4) * 4;
  return {
    u16: new Uint16Array(buffer),
    u32: new Uint32Array(buffer),
    size,
    availFlags: availRing / 2,
    availIdx: availRing / 2 + 1,
    availRing: availRing / 2 + 2,
    usedFlags: usedRing / 2,
    usedIdx: usedRing / 2 + 1,
    usedRing32: usedRing / 4 + 1,
  };
}

/** Round trips per second of the flat loop with chains of `segments` descriptors, in one thread. */
export function baselineRoundTrips(ring: FlatRing, segments: number, ops: number, dataAddress: number, now: () => number = () => performance.now()): number {
  const { u16, u32, availIdx: ai, availRing: ar, usedIdx: ui, usedRing32: ur } = ring;
  const mask = ring.size - 1;
  let availIdx = 0;
  let nextAvail = 0;
  let usedIdx = 0;
  let lastUsed = 0;
  let head = 0;
  let sink = 0;
  let served = 0;
  let reaped = 0;
  const started = now();
  for (let i = 0; i < ops; i++) {
    // Driver: write the chain's descriptors, the avail entry, then avail idx.
    for (let k = 0; k < segments; k++) {
      const b = ((head + k) & mask) * 4;
      u32[b] = dataAddress + 64 * k;
      u32[b + 1] = 0;
      u32[b + 2] = 64;
      u32[b + 3] = (k < segments - 1 ? 1 : 0) | (k > 0 ? 2 : 0) | (((head + k + 1) & mask) << 16);
    }
    u16[ar + (availIdx & mask)] = head;
    availIdx = (availIdx + 1) & 0xffff;
    Atomics.store(u16, ai, availIdx);
    // Device: read avail idx, the entry, the descriptors; write the used element and used idx.
    if (Atomics.load(u16, ai) !== nextAvail) {
      const h = u16[ar + (nextAvail & mask)]!;
      nextAvail = (nextAvail + 1) & 0xffff;
      let d = h;
      let written = 0;
      for (let k = 0; k < segments; k++) {
        const b = d * 4;
        const flagsNext = u32[b + 3]!;
        sink += u32[b]! + u32[b + 1]!;
        if ((flagsNext & 2) !== 0) written += u32[b + 2]!;
        d = flagsNext >>> 16;
      }
      const slot = ur + (usedIdx & mask) * 2;
      u32[slot] = h;
      u32[slot + 1] = written;
      usedIdx = (usedIdx + 1) & 0xffff;
      Atomics.store(u16, ui, usedIdx);
      served++;
    }
    // Driver: read used idx and the element.
    if (Atomics.load(u16, ui) !== lastUsed) {
      const slot = ur + (lastUsed & mask) * 2;
      sink += u32[slot]! + u32[slot + 1]!;
      lastUsed = (lastUsed + 1) & 0xffff;
      reaped++;
    }
    head = (head + segments) & mask;
  }
  const seconds = (now() - started) / 1000;
  if (sink === -1) console.log(sink);
  if (served !== ops || reaped !== ops) throw new Error(`split baseline lost buffers: ${served}/${reaped} of ${ops}`);
  return ops / seconds;
}
