import type { Segment } from './types.js';

/** The shared empty segment list (chains with no readable or no writable part). */
export const EMPTY_SEGMENTS: readonly Segment[] = Object.freeze([]);

/**
 * One buffer segment of a chain. Built as an object literal `{ address, length }`, so that it
 * shares its hidden class with the segments callers pass to `add()`, in both ring layouts.
 */
export function segment(address: number, length: number): Segment {
  return { address, length };
}

/**
 * Segments `start .. start + count - 1` of a chain walk's typed scratch, as a new exact-size
 * array of new segment objects. A device validates a chain into typed scratch first and builds
 * the objects once it has passed: storing new objects into a long-lived scratch array would cost
 * a write barrier each, and growing an array by `push` reallocates its backing store. Array
 * literals for short chains are the cheapest allocation.
 */
export function segmentsOf(addresses: Float64Array, lengths: Uint32Array, start: number, count: number): readonly Segment[] {
  switch (count) {
    case 0:
      return EMPTY_SEGMENTS;
    case 1:
      return [segment(addresses[start]!, lengths[start]!)];
    case 2:
      return [segment(addresses[start]!, lengths[start]!), segment(addresses[start + 1]!, lengths[start + 1]!)];
    case 3:
      return [
        segment(addresses[start]!, lengths[start]!),
        segment(addresses[start + 1]!, lengths[start + 1]!),
        segment(addresses[start + 2]!, lengths[start + 2]!),
      ];
    default: {
      const segments: Segment[] = [];
      for (let k = start; k < start + count; k++) segments.push(segment(addresses[k]!, lengths[k]!));
      return segments;
    }
  }
}
