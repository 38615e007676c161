import { BlkDevice } from '@virtio-ts/backends';
import { equalBytes } from '@virtio-ts/backends/testing';
import { MemoryFile, Qcow2Driver, RawDriver, createQcow2 } from '@virtio-ts/block';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { BlkDriver } from './blk-driver.js';

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed * 101 + (i >> 10)) & 0xff;
  return out;
}

describe('blk driver ↔ blk device over the real BlockDrivers of @virtio-ts/block', () => {
  it('qcow2 in memory: concurrent writes, discards and zeroes, then every byte read back through virtio and directly', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 4 << 20, clusterSize: 65536 });
    const image = await Qcow2Driver.open(file);
    const device = new BlkDevice({ driver: image, numQueues: 2, serial: 'qcow2' });
    const disk = BlkDriver.init(createPciHarness(device).transport);
    const model = new Uint8Array(4 << 20);
    // 32 writes of 48 KiB in flight at once, straddling cluster boundaries.
    await Promise.all(
      Array.from({ length: 32 }, (_, i) => {
        const sector = i * 100 + 7;
        const data = fill(48 * 1024, i);
        model.set(data, sector * 512);
        return disk.write(sector, data);
      }),
    );
    await disk.writeZeroes([{ sector: 300, count: 64 }], { unmap: true });
    model.fill(0, 300 * 512, 364 * 512);
    await disk.flush();
    for (let at = 0; at < 4 << 20; at += 1 << 20) {
      expect(equalBytes(await disk.read(at / 512, 1 << 20), model.subarray(at, at + (1 << 20)))).toBe(true);
    }
    const direct = new Uint8Array(4 << 20);
    await image.read(0, direct);
    expect(equalBytes(direct, model)).toBe(true);
    expect(device.metrics.invalidRequests).toBe(0);
  });

  it('raw over a MemoryFile, read-only: reads work, the device offers RO and the driver refuses writes', async () => {
    const file = new MemoryFile();
    await file.write(0, fill(1 << 20, 3));
    const device = new BlkDevice({ driver: RawDriver.open(file, { readOnly: true }) });
    const disk = BlkDriver.init(createPciHarness(device).transport);
    expect(disk.readOnly).toBe(true);
    expect(equalBytes(await disk.read(16, 4096), fill(1 << 20, 3).subarray(8192, 12288))).toBe(true);
    await expect(disk.write(0, new Uint8Array(512))).rejects.toMatchObject({ code: 'READ_ONLY' });
  });
});
