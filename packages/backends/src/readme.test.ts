import { describe, expect, it } from 'vitest';
// The README example, verbatim apart from the imports' relative paths and the assertions.
import { BlkDevice, encodeRequestHeader, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN } from './index.js';
import { MemoryDisk, harness } from './testing/index.js';

describe('README', () => {
  it('example: a blk device answers a READ built by hand', async () => {
    const disk = new MemoryDisk({ size: 1 << 20 }); // any BlockDriver: raw, qcow2, a file
    disk.bytes.fill(0x5a, 8 * 512, 16 * 512);
    const device = new BlkDevice({ driver: disk, serial: 'disk-0', numQueues: 2 });
    const h = harness(device); // a transport does this part: negotiation, queues, DRIVER_OK
    h.activate(device.deviceFeatures);
    const b = h.builder; // plays the guest driver
    const data = b.reserve([4096]);
    const status = b.reserve([1]);
    const header = b.place(encodeRequestHeader({ type: VIRTIO_BLK_T_IN, reserved: 0, sector: 8n }));
    h.queues[0]!.offer(b.chain(header, [...data, ...status]));
    device.queueNotify(0);
    await device.drain();
    expect(h.memory.readU8(status[0]!.address)).toBe(VIRTIO_BLK_S_OK);
    expect(b.bytesOf(data).every((x) => x === 0x5a)).toBe(true);
    expect(JSON.parse(JSON.stringify(device.metrics))).toMatchObject({ requests: { in: 1 }, readBytes: 4096 });
  });
});
