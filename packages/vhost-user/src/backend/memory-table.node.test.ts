import { readdirSync } from 'node:fs';
import { createMemfd } from '@virtio-ts/host';
import { describe, expect, it } from 'vitest';
import { VhostUserError } from '../errors.js';
import { MemoryTable } from './memory-table.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;
const MiB = 1 << 20;

describe('MemoryTable (ADD_MEM_REG / REM_MEM_REG)', () => {
  it('a region identical to one mapped is a no-op that closes its fd (QEMU 7.2 vhost-user-net adds the table again for its second queue pair); a partial overlap is BAD_PAYLOAD', () => {
    const before = openFds();
    const table = new MemoryTable(8);
    const fd = createMemfd('t', 4 * MiB);
    const region = { guestAddress: 0, size: 4 * MiB, userAddress: 0x7f00_0000_0000n, mmapOffset: 0 };
    expect(table.add(region, fd)).toBe(true);
    const mapped = openFds();
    expect(table.add({ ...region }, createMemfd('t2', 4 * MiB))).toBe(false);
    expect(table.regionCount).toBe(1);
    expect(openFds()).toBe(mapped); // the duplicate's fd was closed
    const third = createMemfd('t3', 4 * MiB);
    let code: string | undefined;
    try {
      table.add({ ...region, guestAddress: MiB, userAddress: 0x7f10_0000_0000n }, third);
    } catch (error) {
      code = VhostUserError.isInstance(error) ? error.code : String(error);
    }
    expect(code).toBe('BAD_PAYLOAD');
    table.clear();
    expect(openFds()).toBe(before);
  });
});
