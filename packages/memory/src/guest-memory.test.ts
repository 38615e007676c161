import { describe, expect, it } from 'vitest';
import { GuestMemory, MemoryError } from './index.js';

describe('GuestMemory', () => {
  it('reads back what it wrote, little-endian', () => {
    const mem = GuestMemory.create([{ guestAddress: 0, size: 4096 }]);
    mem.writeU32(16, 0x11223344);
    expect(mem.readU8(16)).toBe(0x44);
    expect(mem.readU32(16)).toBe(0x11223344);
  });
  it('rejects an access one past the end of RAM', () => {
    const mem = GuestMemory.create([{ guestAddress: 0, size: 4096 }]);
    expect(() => mem.readU8(4096)).toThrow(MemoryError);
  });
});
