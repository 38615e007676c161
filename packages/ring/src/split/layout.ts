import type { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { DESCRIPTOR_SIZE, MAX_QUEUE_SIZE } from '../constants.js';
import { RingError } from '../errors.js';
import type { SplitQueueLayout } from '../types.js';

// VIRTIO 1.3 §2.7, table "Virtqueue Part Alignment Size": descriptor table 16 * size bytes,
// 16-aligned; available ring 6 + 2 * size bytes, 2-aligned; used ring 6 + 8 * size bytes,
// 4-aligned. The trailing u16 of each ring is used_event / avail_event (§2.7.10).

/** §2.7: alignment of the Descriptor Area. */
export const DESC_TABLE_ALIGN = 16;
/** §2.7: alignment of the Driver Area (available ring). */
export const AVAIL_RING_ALIGN = 2;
/** §2.7: alignment of the Device Area (used ring). */
export const USED_RING_ALIGN = 4;

/** Offsets inside the available ring (§2.7.6): flags, idx, ring[size], used_event. */
export const AVAIL_FLAGS_OFFSET = 0;
export const AVAIL_IDX_OFFSET = 2;
export const AVAIL_RING_OFFSET = 4;
/** Offsets inside the used ring (§2.7.8): flags, idx, ring[size] of {id: le32, len: le32}, avail_event. */
export const USED_FLAGS_OFFSET = 0;
export const USED_IDX_OFFSET = 2;
export const USED_RING_OFFSET = 4;
/** §2.7.8: one used element is `{ le32 id; le32 len; }`. */
export const USED_ELEMENT_SIZE = 8;

/** Bytes of the descriptor table of a queue of `size` entries. */
export function descTableSize(size: number): number {
  return DESCRIPTOR_SIZE * size;
}
/** Bytes of the available ring, including used_event. */
export function availRingSize(size: number): number {
  return 6 + 2 * size;
}
/** Bytes of the used ring, including avail_event. */
export function usedRingSize(size: number): number {
  return 6 + USED_ELEMENT_SIZE * size;
}
/** Guest address of `used_event` (the last u16 of the available ring). */
export function usedEventAddress(layout: SplitQueueLayout): number {
  return layout.availRing + AVAIL_RING_OFFSET + 2 * layout.size;
}
/** Guest address of `avail_event` (the last u16 of the used ring). */
export function availEventAddress(layout: SplitQueueLayout): number {
  return layout.usedRing + USED_RING_OFFSET + USED_ELEMENT_SIZE * layout.size;
}

/** True for a valid split queue size: a power of two in 1..32768 (§2.7). */
export function isValidSplitQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= MAX_QUEUE_SIZE && (size & (size - 1)) === 0;
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/**
 * Places the three areas of a split queue contiguously from `base` with the spec's
 * alignments: descriptor table (16), available ring (2), used ring (4).
 * {@link splitQueueFootprint} gives the bytes it spans.
 *
 * @example
 * ```ts
 * splitQueueLayout(256, 0x1000); // { size: 256, descTable: 0x1000, availRing: 0x2000, usedRing: 0x2208 }
 * ```
 */
export function splitQueueLayout(size: number, base: number): SplitQueueLayout {
  if (!isValidSplitQueueSize(size)) {
    throw new RingError('INVALID_LAYOUT', 'split queue size must be a power of two in 1..32768', { length: size });
  }
  if (!Number.isSafeInteger(base) || base < 0) {
    throw new RingError('INVALID_LAYOUT', 'queue base address must be a non-negative integer', { address: base });
  }
  const descTable = alignUp(base, DESC_TABLE_ALIGN);
  const availRing = alignUp(descTable + descTableSize(size), AVAIL_RING_ALIGN);
  const usedRing = alignUp(availRing + availRingSize(size), USED_RING_ALIGN);
  return Object.freeze({ size, descTable, availRing, usedRing });
}

/** Bytes from `layout.descTable` to the end of the used ring for a layout built by {@link splitQueueLayout}. */
export function splitQueueFootprint(size: number): number {
  const l = splitQueueLayout(size, 0);
  return l.usedRing + usedRingSize(size);
}

/** The regions holding each area of a validated layout. */
export interface ResolvedSplitLayout {
  readonly descRegion: GuestRegion;
  readonly availRegion: GuestRegion;
  readonly usedRegion: GuestRegion;
}

/**
 * Checks a layout against §2.7 and guest memory: size a power of two in 1..32768, each area
 * aligned and wholly inside one region (so that typed views can be cached). Throws
 * `INVALID_LAYOUT` (with the memory error as `cause` when an area is unmapped).
 */
export function validateSplitLayout(layout: SplitQueueLayout, memory: GuestMemory): ResolvedSplitLayout {
  const { size } = layout;
  if (!isValidSplitQueueSize(size)) {
    throw new RingError('INVALID_LAYOUT', 'split queue size must be a power of two in 1..32768', { length: size });
  }
  const descRegion = areaRegion(memory, 'descriptor table', layout.descTable, descTableSize(size), DESC_TABLE_ALIGN);
  const availRegion = areaRegion(memory, 'available ring', layout.availRing, availRingSize(size), AVAIL_RING_ALIGN);
  const usedRegion = areaRegion(memory, 'used ring', layout.usedRing, usedRingSize(size), USED_RING_ALIGN);
  return { descRegion, availRegion, usedRegion };
}

function areaRegion(memory: GuestMemory, name: string, address: number, length: number, alignment: number): GuestRegion {
  if (!Number.isSafeInteger(address) || address < 0) {
    throw new RingError('INVALID_LAYOUT', `${name} address is not a valid guest address`, { address });
  }
  if (address % alignment !== 0) {
    throw new RingError('INVALID_LAYOUT', `${name} must be ${alignment}-byte aligned`, { address });
  }
  try {
    return memory.regionFor(address, length, name);
  } catch (cause) {
    throw new RingError('INVALID_LAYOUT', `${name} must lie inside one guest memory region`, { address, length }, { cause });
  }
}
