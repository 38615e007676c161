import { RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE } from '../constants.js';

// VIRTIO 1.3 §2.8.10 / §2.8.14: an Event Suppression structure is
//   le16 desc  = desc_event_off (bits 0..14) | desc_event_wrap (bit 15)
//   le16 flags = desc_event_flags (bits 0..1), the rest reserved.
// Both halves are read and written as one little-endian u32 with Atomics, so a reader never
// sees the flags of one update with the offset of another.

/** Mask of desc_event_off inside the `desc` (off_wrap) field. */
export const EVENT_OFF_MASK = 0x7fff;
/** Bit of desc_event_wrap inside the `desc` field. */
export const EVENT_WRAP_BIT = 0x8000;

/** The u32 word of an Event Suppression structure: `desc` in the low half, `flags` in the high half. */
export function eventSuppressionWord(flags: number, offset: number, wrapCounter: boolean): number {
  return (((flags & 0x3) << 16) | (offset & EVENT_OFF_MASK) | (wrapCounter ? EVENT_WRAP_BIT : 0)) >>> 0;
}

/** desc_event_flags of a word. */
export function eventFlags(word: number): number {
  return (word >>> 16) & 0x3;
}

/**
 * Whether the peer asked to be notified for `count` ring slots just published, ending before
 * ring position `next` with wrap counter `wrapCounter`, given the peer's Event Suppression word.
 *
 * - DISABLE: never. ENABLE (and the reserved value 3): always.
 * - DESC (only with VIRTIO_F_EVENT_IDX, §2.8.10; treated as ENABLE otherwise, which can only
 *   notify more, never less): when the descriptor at (desc_event_off, desc_event_wrap) is among
 *   the published slots. As in Linux's vring_need_event, positions are linearised: the current
 *   lap is [0, size), the previous one [-size, 0); an offset whose wrap bit differs from
 *   `wrapCounter` belongs to the previous lap. When `count` reaches the queue size the window
 *   covers a whole lap and the answer would be ambiguous, so it is yes.
 */
export function needsEvent(word: number, eventIdx: boolean, next: number, wrapCounter: boolean, count: number, size: number): boolean {
  if (count === 0) return false;
  const flags = (word >>> 16) & 0x3;
  if (flags === RING_EVENT_FLAGS_DISABLE) return false;
  if (flags !== RING_EVENT_FLAGS_DESC || !eventIdx) return true;
  if (count >= size) return true;
  let offset = word & EVENT_OFF_MASK;
  if (((word & EVENT_WRAP_BIT) !== 0) !== wrapCounter) offset -= size;
  // vring_need_event(event, new, old): (u16)(new - event - 1) < (u16)(new - old), old = next - count.
  return ((next - offset - 1) & 0xffff) < count;
}
