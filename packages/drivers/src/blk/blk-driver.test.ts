import fc from 'fast-check';
import { BlkDevice, type BlkDeviceOptions } from '@virtio-ts/backends';
import { MemoryDisk, equalBytes } from '@virtio-ts/backends/testing';
import { featureBits } from '@virtio-ts/device';
import { createMmioHarness, createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it, vi } from 'vitest';
import { DriverError } from '../errors.js';
import { BlkDriver, type BlkDriverOptions } from './blk-driver.js';
import { VIRTIO_BLK_F_MQ } from './constants.js';

const DISK = 1 << 20;

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 17 + seed * 31 + (i >> 9)) & 0xff;
  return out;
}

/** An mmio harness whose interrupt line runs the transport's handler when raised (a level-triggered IRQ). */
function mmioWithInterrupts(device: BlkDevice) {
  const harness = createMmioHarness(device);
  let level = false;
  Object.defineProperty(harness.line, 'asserted', {
    get: () => level,
    set: (value: boolean) => {
      level = value;
      if (value) queueMicrotask(() => harness.transport.handleInterrupt());
    },
  });
  return harness;
}

function open(deviceOptions: Partial<BlkDeviceOptions> & { disk?: MemoryDisk } = {}, driverOptions: BlkDriverOptions = {}, transport: 'pci' | 'mmio' = 'pci') {
  const disk = deviceOptions.disk ?? new MemoryDisk({ size: DISK });
  const device = new BlkDevice({ serial: 'virtio-ts-disk', ...deviceOptions, driver: disk });
  const harness = transport === 'pci' ? createPciHarness(device) : mmioWithInterrupts(device);
  const driver = BlkDriver.init(harness.transport, driverOptions);
  return { disk, device, driver, harness };
}

describe('blk driver ↔ blk device end to end (virtio-pci)', () => {
  it('README example: write, read back, flush, get-id', async () => {
    const { disk, driver } = open();
    const data = fill(4096, 1);
    await driver.write(8, data);
    expect(equalBytes(disk.bytes.subarray(8 * 512, 8 * 512 + 4096), data)).toBe(true);
    expect(equalBytes(await driver.read(8, 4096), data)).toBe(true);
    await driver.flush();
    expect(disk.calls.flush).toBeGreaterThanOrEqual(1);
    expect(await driver.getId()).toBe('virtio-ts-disk');
    expect(driver.limits.capacity).toBe(DISK / 512);
  });

  it('many requests in flight over several queues (MQ), completed out of order, data verified against the disk', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { driver, device } = open({ disk, numQueues: 4 });
    expect(driver.numQueues).toBe(4);
    const writes = Array.from({ length: 32 }, (_, i) => driver.write(i * 8, fill(4096, i)));
    // The device may suppress notifications while requests are in flight (§2.7.10) and pick the
    // rest up by polling: wait until it has them all rather than for one timer tick.
    await vi.waitFor(() => expect(device.inFlight).toBe(32));
    // Complete in a scrambled order.
    const order = [...disk.held.keys()].sort((a, b) => ((a * 7919) % 32) - ((b * 7919) % 32));
    const held = [...disk.held];
    disk.held.length = 0;
    for (const i of order) held[i]!.release();
    await Promise.all(writes);
    const reads = Array.from({ length: 32 }, (_, i) => driver.read(i * 8, 4096));
    await vi.waitFor(() => expect(disk.held.length).toBe(32));
    for (const op of disk.held.splice(0).reverse()) op.release();
    const results = await Promise.all(reads);
    results.forEach((r, i) => expect(equalBytes(r, fill(4096, i))).toBe(true));
    expect(device.metrics.maxInFlight).toBe(32);
  });

  it('more requests than descriptors wait for completions instead of failing', async () => {
    const { driver } = open({ queueSize: 8 }, { queueSize: 8 });
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => driver.write(i, fill(512, i)).then(() => driver.read(i, 512))));
    all.forEach((r, i) => expect(equalBytes(r, fill(512, i))).toBe(true));
  });

  it('honours seg_max and size_max: a large I/O is split into conforming requests', async () => {
    const { driver, device, disk } = open({ segMax: 2, sizeMax: 4096 });
    expect(driver.limits).toMatchObject({ segMax: 2, sizeMax: 4096 });
    const data = fill(64 * 1024, 3);
    await driver.write(0, data);
    expect(device.metrics.requests.out).toBe(8); // 64 KiB / (2 * 4 KiB)
    expect(equalBytes(disk.bytes.subarray(0, data.length), data)).toBe(true);
    expect(equalBytes(await driver.read(0, data.length), data)).toBe(true);
    expect(device.metrics.invalidRequests).toBe(0);
  });

  it('honours blk_size: a 4 KiB-block device refuses unaligned calls locally', async () => {
    const { driver, device } = open({ disk: new MemoryDisk({ size: DISK, requestAlignment: 4096 }) });
    expect(driver.limits.blkSize).toBe(4096);
    await expect(driver.read(1, 4096)).rejects.toThrow(DriverError);
    await expect(driver.read(8, 512)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(equalBytes(await driver.read(8, 4096), new Uint8Array(4096))).toBe(true);
    expect(device.metrics.invalidRequests).toBe(0);
  });

  it('5.2.6.1: never submits a request beyond capacity', async () => {
    const { driver, device } = open();
    await expect(driver.read(DISK / 512, 512)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(device.metrics.notifications).toBe(0);
  });

  it('honours RO: writes fail locally with READ_ONLY and reads work', async () => {
    const { driver } = open({ readOnly: true });
    expect(driver.readOnly).toBe(true);
    await expect(driver.write(0, fill(512, 1))).rejects.toMatchObject({ code: 'READ_ONLY' });
    await expect(driver.discard([{ sector: 0, count: 1 }])).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await driver.read(0, 512);
  });

  it('discard and write-zeroes (with unmap) reach the disk; split per max_*_seg', async () => {
    const { driver, disk, device } = open({ maxDiscardSeg: 2 });
    disk.bytes.fill(0xaa);
    await driver.discard([{ sector: 0, count: 1 }, { sector: 4, count: 1 }, { sector: 8, count: 2 }]);
    expect(device.metrics.requests.discard).toBe(2);
    expect(disk.bytes.subarray(0, 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes.subarray(8 * 512, 10 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes[512]).toBe(0xaa);
    await driver.writeZeroes([{ sector: 20, count: 3 }], { unmap: true });
    expect(disk.bytes.subarray(20 * 512, 23 * 512).every((x) => x === 0)).toBe(true);
    expect(driver.limits.writeZeroesMayUnmap).toBe(true);
  });

  it('CONFIG_WCE: switching to writethrough makes the device flush every write', async () => {
    const { driver, disk } = open();
    expect(driver.writeback).toBe(true);
    driver.setWriteback(false);
    expect(driver.writeback).toBe(false);
    const before = disk.calls.flush;
    await driver.write(0, fill(512, 2));
    expect(disk.calls.flush).toBe(before + 1);
  });

  it('without MQ negotiated one queue is used', async () => {
    const { driver } = open({ numQueues: 4 }, { exclude: featureBits(VIRTIO_BLK_F_MQ) });
    expect(driver.numQueues).toBe(1);
    await driver.write(0, fill(512, 9));
  });

  it('IOERR from the backend rejects with IO_ERROR', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { driver } = open({ disk });
    const pending = driver.read(0, 512);
    await new Promise((resolve) => setTimeout(resolve, 0));
    disk.held[0]!.fail();
    await expect(pending).rejects.toMatchObject({ code: 'IO_ERROR' });
  });

  it('reset rejects pending requests with DEVICE_RESET', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { driver } = open({ disk });
    const pending = driver.read(0, 512);
    await new Promise((resolve) => setTimeout(resolve, 0));
    driver.reset();
    await expect(pending).rejects.toMatchObject({ code: 'DEVICE_RESET' });
  });

  it('packed virtqueues (VIRTIO_F_RING_PACKED, §2.8): many requests in flight, data verified', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { driver, device } = open({ disk, packed: true, numQueues: 2 });
    expect(driver.features & featureBits(34)).not.toBe(0n);
    const writes = Array.from({ length: 24 }, (_, i) => driver.write(i * 8, fill(4096, i + 50)));
    await vi.waitFor(() => expect(device.inFlight).toBe(24));
    for (const op of disk.held.splice(0).reverse()) op.release();
    await Promise.all(writes);
    const reads = Array.from({ length: 24 }, (_, i) => driver.read(i * 8, 4096));
    await vi.waitFor(() => expect(disk.held.length).toBe(24));
    const held = disk.held.splice(0);
    for (let i = 0; i < held.length; i += 2) held[i]!.release();
    for (let i = 1; i < held.length; i += 2) held[i]!.release();
    (await Promise.all(reads)).forEach((r, i) => expect(equalBytes(r, fill(4096, i + 50))).toBe(true));
    expect(device.metrics.invalidRequests + device.metrics.ringErrors).toBe(0);
  });

  it('5.2.6.1: a configuration change notification updates the capacity the driver checks against', async () => {
    const { driver, device, disk } = open();
    disk.setLength(DISK / 2);
    device.refreshCapacity();
    expect(driver.limits.capacity).toBe(DISK / 1024);
    await expect(driver.read(DISK / 1024, 512)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await driver.read(DISK / 1024 - 1, 512);
  });

  it('works over virtio-mmio too', async () => {
    const { driver, disk } = open({}, {}, 'mmio');
    await driver.write(2, fill(1024, 5));
    expect(equalBytes(disk.bytes.subarray(1024, 2048), fill(1024, 5))).toBe(true);
  });

  it('property: random request streams against a model disk', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom('read', 'write', 'zero', 'discard', 'flush'),
            sector: fc.nat({ max: 120 }),
            count: fc.integer({ min: 1, max: 8 }),
            seed: fc.nat({ max: 255 }),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        async (ops) => {
          const { driver, disk } = open({ disk: new MemoryDisk({ size: 128 * 512 }), segMax: 3, sizeMax: 1024 });
          const model = new Uint8Array(128 * 512);
          for (const op of ops) {
            const at = op.sector * 512;
            const length = op.count * 512;
            if (op.kind === 'write') {
              const data = fill(length, op.seed);
              await driver.write(op.sector, data);
              model.set(data, at);
            } else if (op.kind === 'read') {
              expect(equalBytes(await driver.read(op.sector, length), model.subarray(at, at + length))).toBe(true);
            } else if (op.kind === 'zero' || op.kind === 'discard') {
              if (op.kind === 'zero') await driver.writeZeroes([{ sector: op.sector, count: op.count }], { unmap: op.seed % 2 === 0 });
              else await driver.discard([{ sector: op.sector, count: op.count }]);
              model.fill(0, at, at + length); // MemoryDisk's discard zeroes
            } else {
              await driver.flush();
            }
          }
          expect(equalBytes(disk.bytes, model)).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });
});
