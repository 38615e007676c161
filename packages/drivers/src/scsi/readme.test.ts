import { ScsiDevice } from '@virtio-ts/backends';
import { MemoryDisk } from '@virtio-ts/backends/testing';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { ScsiDriver } from '../index.js';

describe('README (virtio-scsi)', () => {
  it('example: scan, write, read, flush, hotplug', async () => {
    const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: new MemoryDisk({ size: 1 << 20 }), serial: 'disk-0' } }] });
    const hba = await ScsiDriver.open(createPciHarness(device).transport);
    const disk = hba.disk(0, 0)!;
    await disk.write(8, new Uint8Array(4096).fill(7));
    const back = await disk.read(8, 8);
    await disk.flush();
    device.addLun(0, 1, { driver: new MemoryDisk({ size: 1 << 20 }) });
    await hba.settled();

    expect(back.every((x) => x === 7)).toBe(true);
    expect(disk.serial).toBe('disk-0');
    expect(hba.disk(0, 1)?.blocks).toBe(2048);
  });
});
