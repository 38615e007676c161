import type { QueueFeatures } from '../types.js';

/**
 * VIRTIO 1.3 §2.7.10 (vring_need_event): true when `event` lies in the half-open window
 * (old, new] of a free-running 16-bit index, i.e. the other side asked to be notified once the
 * index passed `event` and this update moved it from `old` to `new`. All arithmetic is mod 2^16.
 */
export function needEvent(event: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/** Fills in absent feature flags with false and freezes the result. */
export function resolveFeatures(features: Partial<QueueFeatures> | undefined): QueueFeatures {
  return Object.freeze({
    eventIdx: features?.eventIdx === true,
    indirect: features?.indirect === true,
    inOrder: features?.inOrder === true,
  });
}
