import { expect, it } from 'vitest';
import { GuestMemory, MemoryError } from './index.js';

it('README example runs', () => {
  const mem = GuestMemory.create([
    { guestAddress: 0, size: 1 << 20 },
    { guestAddress: 2 ** 32, size: 1 << 20 },
  ]);
  mem.writeU32(0x1000, 0xdeadbeef);
  expect(mem.readU32(0x1000).toString(16)).toBe('deadbeef');
  expect(mem.slice(0x1000, 4).length).toBe(4);
  mem.atomicStoreU16(0x2000, 7);
  let code: string | undefined;
  try {
    mem.readU8(1 << 20);
  } catch (error) {
    if (MemoryError.isInstance(error)) code = error.code;
  }
  expect(code).toBe('OUT_OF_BOUNDS');
});
