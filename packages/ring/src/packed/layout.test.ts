import { GuestMemory } from '@virtio-ts/memory';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingError } from '../errors.js';
import { isValidPackedQueueSize, packedQueueFootprint, packedQueueLayout, validatePackedLayout } from './layout.js';

describe('packed layout (VIRTIO 1.3 §2.8.10.1)', () => {
  it('2.8.10.1: "The Queue Size value does not have to be a power of 2": any size in 1..32768', () => {
    expect(isValidPackedQueueSize(1)).toBe(true);
    expect(isValidPackedQueueSize(3)).toBe(true);
    expect(isValidPackedQueueSize(32768)).toBe(true);
    expect(isValidPackedQueueSize(0)).toBe(false);
    expect(isValidPackedQueueSize(32769)).toBe(false);
    expect(isValidPackedQueueSize(2.5)).toBe(false);
    expect(() => packedQueueLayout(0, 0)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
  });

  it('places the descriptor ring 16-aligned and both event suppression structures 4-aligned after it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 32768 }), fc.integer({ min: 0, max: 2 ** 40 }), (size, base) => {
        const l = packedQueueLayout(size, base);
        expect(l.descRing % 16).toBe(0);
        expect(l.descRing).toBeGreaterThanOrEqual(base);
        expect(l.descRing - base).toBeLessThan(16);
        expect(l.driverEvent % 4).toBe(0);
        expect(l.deviceEvent % 4).toBe(0);
        expect(l.driverEvent).toBe(l.descRing + 16 * size);
        expect(l.deviceEvent).toBe(l.driverEvent + 4);
        expect(l.deviceEvent + 4 - l.descRing).toBe(packedQueueFootprint(size));
      }),
    );
  });

  it('2.8.11: "MUST ensure that the physical address of the first byte of each virtqueue part is a multiple of the specified alignment"', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]);
    const good = packedQueueLayout(8, 0x1000);
    expect(() => validatePackedLayout(good, memory)).not.toThrow();
    expect(() => validatePackedLayout({ ...good, descRing: 0x1008 }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => validatePackedLayout({ ...good, driverEvent: good.driverEvent + 2 }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => validatePackedLayout({ ...good, deviceEvent: good.deviceEvent + 1 }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
  });

  it('rejects areas outside guest memory, across two regions, overlapping, or with non-numeric addresses', () => {
    const memory = GuestMemory.create([
      { guestAddress: 0, size: 0x2000 },
      { guestAddress: 0x2000, size: 0x2000 },
    ]);
    const layout = packedQueueLayout(8, 0x1000);
    expect(() => validatePackedLayout({ ...layout, descRing: 0x1fc0 }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => validatePackedLayout({ ...layout, deviceEvent: 0x4000 }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => validatePackedLayout({ ...layout, driverEvent: layout.descRing + 16 }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => validatePackedLayout({ ...layout, deviceEvent: layout.driverEvent }, memory)).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
    expect(() => validatePackedLayout({ ...layout, descRing: Number.NaN }, memory)).toThrow(RingError);
    expect(() => validatePackedLayout({ ...layout, descRing: '4096' as unknown as number }, memory)).toThrow(RingError);
    expect(() => validatePackedLayout(null as never, memory)).toThrow(RingError);
  });
});
