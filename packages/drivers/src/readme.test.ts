import { BlkDevice, ConsoleDevice, MemoryConsoleBackend, RngDevice } from '@virtio-ts/backends';
import { MemoryDisk } from '@virtio-ts/backends/testing';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { BlkDriver, ConsoleDriver, RngDriver } from './index.js';

describe('README', () => {
  it('example: blk, rng and console drivers against our devices over virtio-pci', async () => {
    const blk = BlkDriver.init(createPciHarness(new BlkDevice({ driver: new MemoryDisk({ size: 1 << 20 }), serial: 'disk-0' })).transport);
    await blk.write(8, new Uint8Array(4096).fill(7));
    const back = await blk.read(8, 4096);
    await blk.flush();
    const id = await blk.getId();

    const rng = RngDriver.init(createPciHarness(new RngDevice()).transport);
    const key = await rng.read(32);

    const serial = new MemoryConsoleBackend();
    const console = ConsoleDriver.init(createPciHarness(new ConsoleDevice({ ports: [{ backend: serial }] })).transport);
    await console.write(0, new TextEncoder().encode('hello\n'));

    expect(back.every((x) => x === 7)).toBe(true);
    expect(id).toBe('disk-0');
    expect(key.length).toBe(32);
    expect(serial.text()).toBe('hello\n');
  });
});
