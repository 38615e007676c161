import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory, GuestRegion, MAX_GUEST_ADDRESS, MemoryError, type MemoryErrorCode } from './index.js';

/** Two regions with a hole between them: [0x1000, 0x3000) and [0x4000, 0x5000), plus [0x5000, 0x6000) adjacent. */
function holeyMemory(): GuestMemory {
  return GuestMemory.create([
    { guestAddress: 0x1000, size: 0x2000 },
    { guestAddress: 0x4000, size: 0x1000 },
    { guestAddress: 0x5000, size: 0x1000 },
  ]);
}

function codeOf(fn: () => unknown): MemoryErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (MemoryError.isInstance(error)) return error.code;
    throw error;
  }
  return undefined;
}

/** Reference model: is every byte of the range in some region? */
function modelMapped(mem: GuestMemory, address: number, length: number): boolean {
  for (let a = address; a < address + length; a++) {
    if (!mem.regions.some((r) => a >= r.start && a < r.end)) return false;
  }
  return true;
}

describe('GuestMemory accessors', () => {
  it('reads back what it wrote, little-endian, at every width', () => {
    const mem = GuestMemory.create([{ guestAddress: 0, size: 4096 }]);
    mem.writeU32(16, 0x11223344);
    expect(mem.readU8(16)).toBe(0x44);
    expect(mem.readU16(16)).toBe(0x3344);
    expect(mem.readU32(16)).toBe(0x11223344);
    mem.writeU64(32, 0x0102030405060708n);
    expect(mem.readU8(32)).toBe(0x08);
    expect(mem.readU64(32)).toBe(0x0102030405060708n);
    mem.writeU16(64, 0xbeef);
    mem.writeU8(66, 0x7f);
    expect([...mem.slice(64, 3)]).toEqual([0xef, 0xbe, 0x7f]);
  });

  it('slice is zero-copy and exactly the requested length', () => {
    const mem = GuestMemory.create([{ guestAddress: 0x10000, size: 4096 }]);
    const view = mem.slice(0x10010, 8);
    expect(view.length).toBe(8);
    view[0] = 0xaa;
    expect(mem.readU8(0x10010)).toBe(0xaa);
  });

  it('copies across adjacent regions but never across a hole', () => {
    const mem = holeyMemory();
    const data = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    mem.write(0x4ff0, data); // spans the 0x4000 and 0x5000 regions
    const back = new Uint8Array(32);
    mem.read(0x4ff0, back);
    expect(back).toEqual(data);
    expect(codeOf(() => mem.slice(0x4ff0, 32))).toBe('CROSSES_REGION');
    // A copy across the hole [0x3000, 0x4000) touches nothing, not even the mapped prefix.
    mem.fill(0x2ff0, 16, 0x55);
    expect(codeOf(() => mem.write(0x2ff0, new Uint8Array(0x1100)))).toBe('OUT_OF_BOUNDS');
    expect(mem.readU8(0x2ff0)).toBe(0x55);
  });

  it('rejects accesses outside RAM, in holes, overflowing and past 2^53 with stable codes', () => {
    const mem = holeyMemory();
    expect(codeOf(() => mem.readU8(0))).toBe('OUT_OF_BOUNDS');
    expect(codeOf(() => mem.readU8(0x3000))).toBe('OUT_OF_BOUNDS'); // hole
    expect(codeOf(() => mem.readU32(0x2ffe))).toBe('OUT_OF_BOUNDS'); // straddles into the hole
    expect(codeOf(() => mem.readU8(0x6000))).toBe('OUT_OF_BOUNDS'); // one past the end
    expect(codeOf(() => mem.readU8(-1))).toBe('INVALID_ADDRESS');
    expect(codeOf(() => mem.readU8(1.5))).toBe('INVALID_ADDRESS');
    expect(codeOf(() => mem.readU8(2 ** 64 - 8))).toBe('INVALID_ADDRESS');
    expect(codeOf(() => mem.slice(MAX_GUEST_ADDRESS - 4, 8))).toBe('INVALID_ADDRESS');
    expect(codeOf(() => mem.slice(0x1000, 0xffffffff))).toBe('OUT_OF_BOUNDS');
    expect(codeOf(() => mem.atomicLoadU16(0x1001))).toBe('MISALIGNED');
  });

  it('atomics and fence work on SharedArrayBuffer and plain ArrayBuffer backings', () => {
    for (const buffer of [new SharedArrayBuffer(8192), new ArrayBuffer(8192)]) {
      const mem = new GuestMemory([new GuestRegion({ guestAddress: 0x2000, size: 4096, buffer, offset: 4096 })]);
      mem.atomicStoreU16(0x2002, 0xfffe);
      mem.atomicStoreU32(0x2004, 0xcafef00d);
      mem.fence();
      expect(mem.atomicLoadU16(0x2002)).toBe(0xfffe);
      expect(mem.readU16(0x2002)).toBe(0xfffe);
      expect(mem.atomicLoadU32(0x2004)).toBe(0xcafef00d);
      expect(new Uint8Array(buffer)[4096 + 2]).toBe(0xfe);
    }
  });

  it('refuses overlapping regions, bad sizes and too-small backings', () => {
    expect(codeOf(() => GuestMemory.create([{ guestAddress: 0, size: 4096 }, { guestAddress: 2048, size: 4096 }]))).toBe('INVALID_REGION');
    expect(codeOf(() => GuestMemory.create([{ guestAddress: 0, size: 0 }]))).toBe('INVALID_REGION');
    expect(codeOf(() => new GuestRegion({ guestAddress: 0, size: 8192, buffer: new ArrayBuffer(4096) }))).toBe('INVALID_REGION');
    expect(codeOf(() => new GuestRegion({ guestAddress: 4, size: 16, buffer: new ArrayBuffer(64) }))).toBe('INVALID_REGION');
    expect(codeOf(() => new GuestMemory([]))).toBe('INVALID_REGION');
  });

  it('finds regions through the last-hit cache and by binary search alike', () => {
    const regions = Array.from({ length: 64 }, (_, i) => ({ guestAddress: i * 0x2000, size: 0x1000 }));
    const mem = GuestMemory.create(regions);
    for (let i = 63; i >= 0; i -= 7) {
      expect(mem.findRegion(i * 0x2000 + 5)?.start).toBe(i * 0x2000);
      expect(mem.findRegion(i * 0x2000 + 0x1000)).toBeUndefined();
    }
  });
});

describe('GuestMemory properties (H15: a view has exactly the requested length; fuzzed ranges never escape)', () => {
  const arbRange = fc.record({
    address: fc.oneof(fc.integer({ min: 0, max: 0x7000 }), fc.constantFrom(-1, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 0.5)),
    length: fc.oneof(fc.integer({ min: 0, max: 0x3000 }), fc.constantFrom(-1, 2 ** 32, 2 ** 53)),
  });

  it('slice succeeds exactly when the range is inside one region, with exactly length bytes', () => {
    const mem = holeyMemory();
    fc.assert(
      fc.property(arbRange, ({ address, length }) => {
        const inOne = Number.isSafeInteger(address) && Number.isSafeInteger(length) && address >= 0 && length >= 0 &&
          mem.regions.some((r) => address >= r.start && address + length <= r.end && (length > 0 || address < r.end));
        let view: Uint8Array | undefined;
        try {
          view = mem.slice(address, length);
        } catch (error) {
          expect(MemoryError.isInstance(error)).toBe(true);
        }
        expect(view !== undefined).toBe(inOne);
        if (view) expect(view.length).toBe(length);
      }),
      { numRuns: 2000 },
    );
  });

  it('read/write succeed exactly when every byte is mapped, and write is all-or-nothing', () => {
    fc.assert(
      fc.property(arbRange, fc.integer({ min: 1, max: 255 }), ({ address, length }, byte) => {
        const mem = holeyMemory();
        const ok = Number.isSafeInteger(address) && Number.isSafeInteger(length) && address >= 0 && length >= 0 && length <= 0x3000 &&
          address + length <= MAX_GUEST_ADDRESS && modelMapped(mem, address, length);
        const src = new Uint8Array(Math.max(0, Math.min(length, 0x3000))).fill(byte);
        let threw = false;
        try {
          if (length === src.length) mem.write(address, src);
          else mem.fill(address, length, byte);
        } catch (error) {
          expect(MemoryError.isInstance(error)).toBe(true);
          threw = true;
        }
        expect(threw).toBe(!ok);
        // Nothing outside the range changed; nothing at all on failure.
        let written = 0;
        for (const r of mem.regions) for (const b of r.bytes) if (b === byte) written++;
        expect(written).toBe(ok ? length : 0);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips every width at every valid address', () => {
    const mem = GuestMemory.create([{ guestAddress: 0x1000, size: 256 }]);
    fc.assert(
      fc.property(fc.integer({ min: 0x1000, max: 0x1000 + 248 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (address, value) => {
        mem.writeU64(address, value);
        expect(mem.readU64(address)).toBe(value);
        mem.writeU32(address, Number(value & 0xffffffffn));
        expect(mem.readU32(address)).toBe(Number(value & 0xffffffffn));
      }),
      { numRuns: 500 },
    );
  });
});
