import { describe, expect, it } from 'vitest';
// The README's virtio-scsi example with a test harness as the transport, plus the assertions.
import { ScsiDevice, SENSE, decodeSense, encodeCdb, encodeLunAddress } from '../index.js';
import { MemoryDisk, harness } from '../testing/index.js';

describe('README (virtio-scsi)', () => {
  it('example: LUNs, hotplug, capacity change, and a REPORT LUNS built by hand', async () => {
    const disk = new MemoryDisk({ size: 2 << 20 });
    disk.setLength(1 << 20);
    const other = new MemoryDisk({ size: 1 << 20 });
    const device = new ScsiDevice({
      luns: [{ target: 0, lun: 0, unit: { driver: disk, serial: 'disk-0', vendor: 'ACME', product: 'FAST DISK' } }],
      numQueues: 2,
    });
    const h = harness(device);
    h.activate(device.deviceFeatures);
    const events = [0, 1, 2].map(() => h.builder.reserve([16]));
    for (const e of events) h.queues[1]!.offer(h.builder.chain([], e));
    device.addLun(0, 1, { driver: other, readOnly: true });
    disk.setLength(2 << 20);
    device.refreshCapacity();
    device.removeLun(0, 1);
    expect(h.queues[1]!.used.map((u) => u.length)).toEqual([16, 16, 16]);

    const b = h.builder;
    const header = new Uint8Array(51);
    header.set(encodeLunAddress({ target: 0, lun: 0 }));
    header.set(encodeCdb({ op: 'report-luns', selectReport: 0, allocationLength: 64 }), 19);
    const response = b.reserve([108]);
    const data = b.reserve([64]);
    h.queues[3]!.offer(b.chain(b.place(header), [...response, ...data]));
    device.queueNotify(3);
    await device.drain();
    expect([...b.bytesOf(data).subarray(0, 16)]).toEqual([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // The next command sees the power-on unit attention first.
    const tur = new Uint8Array(51);
    tur.set(encodeLunAddress({ target: 0, lun: 0 }));
    const r2 = b.reserve([108]);
    h.queues[2]!.offer(b.chain(b.place(tur), r2));
    device.queueNotify(2);
    await device.drain();
    expect(decodeSense(b.bytesOf(r2).subarray(12, 30))).toEqual(SENSE.POWER_ON_RESET);
  });
});
