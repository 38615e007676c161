import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE, RING_EVENT_FLAGS_ENABLE } from '../constants.js';
import { eventFlags, eventSuppressionWord, needsEvent } from './event-suppression.js';

describe('event suppression (VIRTIO 1.3 §2.8.10, §2.8.14)', () => {
  it('2.8.14: desc holds desc_event_off in bits 0..14 and desc_event_wrap in bit 15; flags in the next le16', () => {
    const word = eventSuppressionWord(RING_EVENT_FLAGS_DESC, 0x1234, true);
    expect(word & 0xffff).toBe(0x9234);
    expect(word >>> 16).toBe(RING_EVENT_FLAGS_DESC);
    expect(eventFlags(word)).toBe(RING_EVENT_FLAGS_DESC);
  });

  it('ENABLE notifies for any new slot, DISABLE never, nothing new never', () => {
    expect(needsEvent(eventSuppressionWord(RING_EVENT_FLAGS_ENABLE, 0, false), true, 5, true, 1, 8)).toBe(true);
    expect(needsEvent(eventSuppressionWord(RING_EVENT_FLAGS_DISABLE, 0, false), true, 5, true, 1, 8)).toBe(false);
    expect(needsEvent(eventSuppressionWord(RING_EVENT_FLAGS_ENABLE, 0, false), true, 5, true, 0, 8)).toBe(false);
    // The reserved value 3 and DESC without EVENT_IDX notify (more, never less).
    expect(needsEvent((3 << 16) >>> 0, true, 5, true, 1, 8)).toBe(true);
    expect(needsEvent(eventSuppressionWord(RING_EVENT_FLAGS_DESC, 7, false), false, 5, true, 1, 8)).toBe(true);
  });

  it('2.8.10: DESC triggers exactly when the named descriptor (offset, wrap) is among the published slots', () => {
    // Model: linear positions. Slot p of lap L is L * size + p; the wrap counter of lap L is (L even).
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 32768 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 1, max: 32768 }),
        fc.integer({ min: -32768, max: 32767 }),
        (size, startLap, countRaw, eventDelta) => {
          const count = Math.min(countRaw, size - 1);
          if (count === 0) return;
          const old = startLap * size + ((countRaw * 7919) % size);
          const next = old + count;
          // The event names a slot within one lap before `next` or just after it.
          const event = Math.max(0, next - 1 + Math.max(-size + 1, Math.min(size - 1, eventDelta % size)));
          const offset = event % size;
          const wrap = Math.floor(event / size) % 2 === 0;
          const nextSlot = next % size;
          const nextWrap = Math.floor(next / size) % 2 === 0;
          const word = eventSuppressionWord(RING_EVENT_FLAGS_DESC, offset, wrap);
          const expected = event >= old && event < next;
          expect(needsEvent(word, true, nextSlot, nextWrap, count, size)).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
