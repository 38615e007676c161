import fc from 'fast-check';
import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import { DeviceError } from './errors.js';
import { GuestMemoryAllocator } from './guest-allocator.js';

describe('GuestMemoryAllocator', () => {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]);

  it('hands out aligned, disjoint ranges inside its window and takes them back', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ length: fc.integer({ min: 1, max: 3000 }), alignLog: fc.integer({ min: 0, max: 12 }), freeFirst: fc.boolean() }), { maxLength: 40 }),
        (ops) => {
          const a = new GuestMemoryAllocator(memory, 0x1000, 0x8000);
          const live = new Map<number, number>();
          for (const op of ops) {
            if (op.freeFirst && live.size > 0) {
              const [address] = live.keys();
              a.free(address!);
              live.delete(address!);
            }
            const alignment = 1 << op.alignLog;
            let address: number;
            try {
              address = a.allocate(op.length, alignment);
            } catch (error) {
              expect(DeviceError.isInstance(error) && error.code === 'OUT_OF_MEMORY').toBe(true);
              continue;
            }
            expect(address % alignment).toBe(0);
            expect(address).toBeGreaterThanOrEqual(0x1000);
            expect(address + op.length).toBeLessThanOrEqual(0x9000);
            for (const [other, length] of live) expect(address + op.length <= other || other + length <= address).toBe(true);
            live.set(address, op.length);
          }
          for (const address of live.keys()) a.free(address);
          expect(a.freeBytes).toBe(0x8000);
          // Fully coalesced: the whole window is allocatable again in one piece.
          expect(a.allocate(0x8000, 1)).toBe(0x1000);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('refuses a double free, a foreign address and a window outside guest memory', () => {
    const a = new GuestMemoryAllocator(memory, 0, 0x1000);
    const x = a.allocate(16);
    a.free(x);
    expect(() => a.free(x)).toThrow(/INVALID_ARGUMENT/);
    expect(() => a.free(123)).toThrow(/INVALID_ARGUMENT/);
    expect(() => new GuestMemoryAllocator(memory, 0xf000, 0x2000)).toThrow(/INVALID_ARGUMENT/);
    expect(() => a.allocate(0)).toThrow(/INVALID_ARGUMENT/);
    expect(() => a.allocate(8, 3)).toThrow(/INVALID_ARGUMENT/);
  });
});
