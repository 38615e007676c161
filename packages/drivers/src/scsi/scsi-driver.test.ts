import fc from 'fast-check';
import { ScsiDevice, type ScsiDeviceOptions } from '@virtio-ts/backends';
import { MemoryDisk, equalBytes } from '@virtio-ts/backends/testing';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { DriverError } from '../errors.js';
import { VIRTIO_SCSI_S_ABORTED, VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_T_TMF_ABORT_TASK, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET } from './constants.js';
import * as cmd from './scsi-commands.js';
import { ScsiDriver, type ScsiDriverOptions } from './scsi-driver.js';

const DISK = 1 << 20;

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed * 29 + (i >> 9)) & 0xff;
  return out;
}

async function open(deviceOptions: ScsiDeviceOptions = {}, driverOptions: ScsiDriverOptions = {}) {
  const disk = new MemoryDisk({ size: DISK });
  const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: disk, serial: 'virtio-ts-0', vendor: 'VIRTIOTS', product: 'SCSI DISK' } }], ...deviceOptions });
  const harness = createPciHarness(device);
  const driver = await ScsiDriver.open(harness.transport, driverOptions);
  return { disk, device, driver, harness };
}

describe('scsi driver ↔ scsi device end to end (virtio-pci)', () => {
  it('README example: scan, write, read back, flush', async () => {
    const { disk, driver } = await open();
    const lun = driver.disk(0, 0)!;
    expect(lun).toBeDefined();
    expect([lun.vendor, lun.product, lun.serial, lun.blocks, lun.blockSize]).toEqual(['VIRTIOTS', 'SCSI DISK', 'virtio-ts-0', 2048, 512]);
    const data = fill(4096, 1);
    await lun.write(8, data);
    expect(equalBytes(disk.bytes.subarray(8 * 512, 8 * 512 + 4096), data)).toBe(true);
    expect(equalBytes(await lun.read(8, 8), data)).toBe(true);
    const flushes = disk.calls.flush;
    await lun.flush();
    expect(disk.calls.flush).toBe(flushes + 1);
  });

  it('scans several targets and LUNs (REPORT LUNS, INQUIRY, READ CAPACITY(16)); absent targets answer BAD_TARGET', async () => {
    const luns = [
      { target: 0, lun: 0, unit: { driver: new MemoryDisk({ size: DISK }) } },
      { target: 0, lun: 3, unit: { driver: new MemoryDisk({ size: DISK * 2, requestAlignment: 4096 }) } },
      { target: 2, lun: 300, unit: { driver: new MemoryDisk({ size: DISK }), readOnly: true } },
    ];
    const { driver } = await open({ luns });
    expect([...driver.disks.keys()].sort()).toEqual(['0:0', '0:3', '2:300']);
    expect([driver.disk(0, 3)!.blockSize, driver.disk(0, 3)!.blocks]).toEqual([4096, 512]);
    expect(driver.disk(2, 300)!.readOnly).toBe(true);
    await expect(driver.disk(2, 300)!.write(0, new Uint8Array(512))).rejects.toMatchObject({ code: 'READ_ONLY' });
    expect((await driver.command({ target: 5, lun: 0 }, cmd.testUnitReady())).response).toBe(VIRTIO_SCSI_S_BAD_TARGET);
  });

  it('discard sends UNMAP; large I/O is split to the block limits; many commands in flight over several queues', async () => {
    const { disk, driver, device } = await open({ numQueues: 3 });
    const lun = driver.disk(0, 0)!;
    expect(lun.thinProvisioned).toBe(true);
    disk.bytes.fill(7, 0, 4096);
    await lun.discard(0, 8);
    expect(disk.calls.discard).toBe(1);
    expect(disk.bytes.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    const big = fill(DISK, 3);
    await lun.write(0, big);
    expect(equalBytes(await lun.read(0, 2048), big)).toBe(true);
    await Promise.all(Array.from({ length: 48 }, (_, i) => lun.write(i * 4, fill(2048, i))));
    const back = await Promise.all(Array.from({ length: 48 }, (_, i) => lun.read(i * 4, 4)));
    back.forEach((r, i) => expect(equalBytes(r, fill(2048, i))).toBe(true));
    expect(device.metrics.status.checkCondition).toBeGreaterThanOrEqual(1); // the power-on unit attention, retried
  });

  it('property: random READ/WRITE streams through the driver match a model disk', async () => {
    const { driver } = await open();
    const lun = driver.disk(0, 0)!;
    const model = new Uint8Array(DISK);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ write: fc.boolean(), lba: fc.integer({ min: 0, max: 2047 }), blocks: fc.integer({ min: 1, max: 64 }), seed: fc.nat(255) }), { maxLength: 15 }), async (ops) => {
        for (const op of ops) {
          const count = Math.min(op.blocks, 2048 - op.lba);
          if (op.write) {
            const data = fill(count * 512, op.seed);
            await lun.write(op.lba, data);
            model.set(data, op.lba * 512);
          } else {
            expect(equalBytes(await lun.read(op.lba, count), model.subarray(op.lba * 512, (op.lba + count) * 512))).toBe(true);
          }
        }
      }),
      { numRuns: 15 },
    );
  });

  it('hotplug while I/O runs: RESCAN adds the disk, REMOVED drops it, UNIT ATTENTION is retried transparently', async () => {
    const { driver, device } = await open();
    const lun0 = driver.disk(0, 0)!;
    const io = Promise.all(Array.from({ length: 16 }, (_, i) => lun0.write(i * 8, fill(4096, i))));
    device.addLun(0, 1, { driver: new MemoryDisk({ size: DISK }), serial: 'hot' });
    await io;
    await driver.settled();
    expect(driver.disk(0, 1)?.serial).toBe('hot');
    // LUN 0 had REPORTED LUNS DATA HAS CHANGED pending: the next read retries it.
    expect(equalBytes(await lun0.read(0, 8), fill(4096, 0))).toBe(true);
    await driver.disk(0, 1)!.write(0, fill(512, 9));
    device.removeLun(0, 1);
    await driver.settled();
    expect(driver.disk(0, 1)).toBeUndefined();
    expect(driver.events.map((e) => e.reason)).toEqual([1, 2]);
  });

  it('events missed while no event buffer was posted trigger a full rescan', async () => {
    const { driver, device } = await open({}, { eventBuffers: 1 });
    device.addLun(0, 1, { driver: new MemoryDisk({ size: DISK }) });
    device.addLun(0, 2, { driver: new MemoryDisk({ size: DISK }) }); // no buffer yet: dropped
    await driver.settled();
    await new Promise((r) => setTimeout(r, 0));
    await driver.settled();
    expect(device.metrics.eventsMissed).toBeGreaterThanOrEqual(1);
    // The re-posted buffer received NO_EVENT | EVENTS_MISSED, so the driver rescanned.
    expect(driver.events.some((e) => e.missed)).toBe(true);
    expect([...driver.disks.keys()].sort()).toEqual(['0:0', '0:1', '0:2']);
  });

  it('capacity change: PARAM_CHANGE makes the disk re-read its capacity', async () => {
    const disk = new MemoryDisk({ size: DISK * 2 });
    disk.setLength(DISK);
    const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: disk } }] });
    const driver = await ScsiDriver.open(createPciHarness(device).transport);
    expect(driver.disk(0, 0)!.blocks).toBe(2048);
    disk.setLength(DISK * 2);
    device.refreshCapacity();
    await driver.settled();
    expect(driver.disk(0, 0)!.blocks).toBe(4096);
  });

  it('task management: LUN RESET answers FUNCTION COMPLETE; ABORT TASK of a held READ ends it with ABORTED', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: disk } }] });
    const harness = createPciHarness(device);
    const opening = ScsiDriver.open(harness.transport);
    // Scanning reads nothing from the disk but MODE SENSE etc; release anything held meanwhile.
    const pump = setInterval(() => disk.held.splice(0).forEach((h) => h.release()), 1);
    const driver = await opening;
    clearInterval(pump);
    expect(await driver.taskManagement(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { target: 0, lun: 0 })).toBe(0);
    const read = driver.command({ target: 0, lun: 0 }, cmd.readWrite16(false, 0, 1), { dataIn: 512, tag: 99n });
    // The reset left a unit attention: the first command consumes it without I/O.
    expect((await read).sense).toEqual({ key: 6, asc: 0x29, ascq: 0 });
    const held = driver.command({ target: 0, lun: 0 }, cmd.readWrite16(false, 0, 1), { dataIn: 512, tag: 100n });
    await new Promise((r) => setTimeout(r, 0));
    expect(disk.held.length).toBe(1);
    const abort = driver.taskManagement(VIRTIO_SCSI_T_TMF_ABORT_TASK, { target: 0, lun: 0 }, 100n);
    await new Promise((r) => setTimeout(r, 0));
    disk.held.shift()!.release();
    expect((await held).response).toBe(VIRTIO_SCSI_S_ABORTED);
    expect(await abort).toBe(0);
  });

  it('caller errors are DriverError INVALID_ARGUMENT', async () => {
    const { driver } = await open();
    const lun = driver.disk(0, 0)!;
    await expect(lun.read(2047, 2)).rejects.toSatisfy((e: unknown) => DriverError.isInstance(e) && e.code === 'INVALID_ARGUMENT');
    await expect(lun.write(0, new Uint8Array(100))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
