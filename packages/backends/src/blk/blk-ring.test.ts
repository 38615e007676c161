import { MockSplitQueue } from '@virtio-ts/ring/testing';
import type { ActivationContext } from '@virtio-ts/device';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../testing/bytes.js';
import { MemoryDisk } from '../testing/memory-disk.js';
import { BlkDevice } from './blk-device.js';
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from './constants.js';
import { SUPPRESS_LIMIT_MS } from './queue-handler.js';
import { encodeRequestHeader } from './request.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** VIRTQ_USED_F_NO_NOTIFY (§2.7.10): the device asks the driver not to notify. */
const NO_NOTIFY = 1;

/** A blk device over a real split ring that the test writes by hand (MockSplitQueue). */
function onRealRing(size: number, disk = new MemoryDisk({ size: 1 << 20 })) {
  const mock = new MockSplitQueue({ size, memorySize: 8 << 20 });
  const device = new BlkDevice({ driver: disk, queueSize: size });
  const needsReset: string[] = [];
  const interrupts: number[] = [];
  const context: ActivationContext = {
    memory: mock.memory,
    features: device.deviceFeatures,
    queues: [mock.createDevice()],
    interrupt: { signalQueue: (i) => interrupts.push(i), signalConfig: () => undefined },
    markNeedsReset: (reason) => needsReset.push(reason ?? ''),
  };
  device.validateFeatures(device.deviceFeatures);
  device.activate(context);
  const header = (type: number, sector: number) => {
    const address = mock.alloc(16);
    mock.memory.write(address, encodeRequestHeader({ type, reserved: 0, sector: BigInt(sector) }));
    return address;
  };
  const used = () => Array.from({ length: mock.usedIdx }, (_, i) => mock.usedElement(i));
  return { mock, device, disk, needsReset, interrupts, header, used };
}

describe('virtio-blk over a real split ring (hostile guests)', () => {
  it('H14: a READ and a WRITE made of 1-byte descriptors are byte-exact through the ring', async () => {
    const r = onRealRing(2048);
    const payload = new Uint8Array(1024).map((_, i) => (i * 7 + 3) & 0xff);
    const h = r.header(VIRTIO_BLK_T_OUT, 4);
    const data = r.mock.alloc(1024);
    r.mock.memory.write(data, payload);
    const status = r.mock.alloc(1);
    const segments = [
      ...Array.from({ length: 16 }, (_, i) => ({ address: h + i, length: 1 })),
      ...Array.from({ length: 1024 }, (_, i) => ({ address: data + i, length: 1 })),
      { address: status, length: 1, write: true },
    ];
    r.mock.publish(r.mock.writeChain(0, segments));
    r.device.queueNotify(0);
    await r.device.drain();
    expect(r.mock.memory.readU8(status)).toBe(VIRTIO_BLK_S_OK);
    expect(equalBytes(r.disk.bytes.subarray(2048, 3072), payload)).toBe(true);
    const h2 = r.header(VIRTIO_BLK_T_IN, 4);
    const back = r.mock.alloc(1024);
    const status2 = r.mock.alloc(1);
    r.mock.publish(
      r.mock.writeChain(1041, [
        ...Array.from({ length: 16 }, (_, i) => ({ address: h2 + i, length: 1 })),
        ...Array.from({ length: 1024 }, (_, i) => ({ address: back + i, length: 1, write: true })),
        { address: status2, length: 1, write: true },
      ]),
    );
    r.device.queueNotify(0);
    await r.device.drain();
    expect(r.used()).toEqual([
      { id: 0, length: 1 },
      { id: 1041, length: 1025 },
    ]);
    expect(equalBytes(r.mock.memory.slice(back, 1024), payload)).toBe(true);
  });

  it('H3: zero-length header, data and status descriptors do not loop; the request completes', async () => {
    const r = onRealRing(16);
    const h = r.header(VIRTIO_BLK_T_IN, 0);
    const data = r.mock.alloc(512);
    const status = r.mock.alloc(1);
    r.mock.publish(
      r.mock.writeChain(0, [
        { address: h, length: 0 },
        { address: h, length: 16 },
        { address: data, length: 0, write: true },
        { address: data, length: 512, write: true },
        { address: status, length: 0, write: true },
        { address: status, length: 1, write: true },
      ]),
    );
    r.device.queueNotify(0);
    await r.device.drain();
    expect(r.mock.memory.readU8(status)).toBe(VIRTIO_BLK_S_OK);
    expect(r.used()).toEqual([{ id: 0, length: 513 }]);
  });

  it('H5/H6: a descriptor loop and a chain whose lengths sum past 2^32 are returned with length 0; the queue goes on', async () => {
    const r = onRealRing(16);
    // 0 → 1 → 0
    r.mock.writeDescriptor(0, { address: r.header(VIRTIO_BLK_T_FLUSH, 0), length: 16, flags: 1, next: 1 });
    r.mock.writeDescriptor(1, { address: r.mock.alloc(1), length: 1, flags: 1 | 2, next: 0 });
    // 2 → 3 → 4 with lengths summing past 2^32 (addresses inside 8 MiB are not checked before the sum).
    r.mock.writeDescriptor(2, { address: 0x1000, length: 0xffff_fff0, flags: 1, next: 3 });
    r.mock.writeDescriptor(3, { address: 0x1000, length: 0x20, flags: 1 | 2, next: 4 });
    r.mock.writeDescriptor(4, { address: 0x1000, length: 1, flags: 2 });
    const status = r.mock.alloc(1);
    r.mock.writeChain(5, [
      { address: r.header(VIRTIO_BLK_T_FLUSH, 0), length: 16 },
      { address: status, length: 1, write: true },
    ]);
    r.mock.publish(0, 2, 5);
    expect(() => r.device.queueNotify(0)).not.toThrow();
    await r.device.drain();
    expect(r.used()).toEqual([
      { id: 0, length: 0 },
      { id: 2, length: 0 },
      { id: 5, length: 1 },
    ]);
    expect(r.device.metrics.ringErrors).toBe(2);
    expect(r.needsReset).toEqual([]);
  });

  it('H10: head 0 published twice before it completes (async I/O): DEVICE_NEEDS_RESET, no second completion', async () => {
    const disk = new MemoryDisk({ size: 1 << 20, manual: true });
    const r = onRealRing(16, disk);
    const status = r.mock.alloc(1);
    r.mock.writeChain(0, [
      { address: r.header(VIRTIO_BLK_T_IN, 0), length: 16 },
      { address: r.mock.alloc(512), length: 512, write: true },
      { address: status, length: 1, write: true },
    ]);
    r.mock.publish(0);
    r.device.queueNotify(0);
    expect(r.device.inFlight).toBe(1);
    r.mock.publish(0);
    r.device.queueNotify(0);
    expect(r.needsReset.length).toBe(1);
    disk.held.forEach((op) => op.release());
    await r.device.drain();
    await tick();
    expect(r.used()).toEqual([]);
  });

  it('H13: 79 x 256 malformed requests through the ring are all returned; the ring keeps serving', async () => {
    const r = onRealRing(256);
    const bad = r.header(0xbad, 0);
    const status = r.mock.alloc(1);
    // Each head is a 1-descriptor chain with no status byte (NO_STATUS_BYTE): returned with 0.
    const rounds = 79;
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 256; i++) r.mock.writeDescriptor(i, { address: bad, length: 16, flags: 0 });
      r.mock.publish(...Array.from({ length: 256 }, (_, i) => i));
      r.device.queueNotify(0);
    }
    expect(r.mock.usedIdx).toBe((rounds * 256) & 0xffff);
    expect(r.device.metrics.faults.NO_STATUS_BYTE).toBe(rounds * 256);
    r.mock.writeChain(0, [
      { address: r.header(VIRTIO_BLK_T_FLUSH, 0), length: 16 },
      { address: status, length: 1, write: true },
    ]);
    r.mock.publish(0);
    r.device.queueNotify(0);
    await r.device.drain();
    expect(r.mock.memory.readU8(status)).toBe(VIRTIO_BLK_S_OK);
    expect(r.needsReset).toEqual([]);
  });

  describe('notification suppression while requests are in flight (2.7.10)', () => {
    function readChain(r: ReturnType<typeof onRealRing>, head: number, sector: number) {
      const status = r.mock.alloc(1);
      r.mock.writeChain(head, [
        { address: r.header(VIRTIO_BLK_T_IN, sector), length: 16 },
        { address: r.mock.alloc(512), length: 512, write: true },
        { address: status, length: 1, write: true },
      ]);
      return status;
    }

    it('2.7.10: the device MAY suppress notifications: while a request is in flight they stay disabled, and its completion starts a request added without a notification', async () => {
      const disk = new MemoryDisk({ size: 1 << 20, manual: true });
      const r = onRealRing(16, disk);
      readChain(r, 0, 0);
      r.mock.publish(0);
      r.device.queueNotify(0);
      expect(r.device.inFlight).toBe(1);
      expect(r.mock.usedFlags & NO_NOTIFY).toBe(NO_NOTIFY);
      // The driver adds a request and, told not to, sends no notification.
      readChain(r, 4, 8);
      r.mock.publish(4);
      disk.held.splice(0).forEach((op) => op.release());
      await tick();
      expect(r.used().map((u) => u.id)).toEqual([0]);
      expect(r.device.inFlight).toBe(1); // head 4 was started by head 0's completion
      disk.held.splice(0).forEach((op) => op.release());
      await r.device.drain();
      await tick();
      expect(r.used().map((u) => u.id)).toEqual([0, 4]);
      expect(r.device.metrics.notifications).toBe(1);
      // Idle again: notifications are back on (§2.7.10: re-enabled before the device sleeps).
      expect(r.mock.usedFlags & NO_NOTIFY).toBe(0);
    });

    it('2.7.10: a request queued behind a slow one is started within the suppression limit, with notifications re-enabled', async () => {
      const disk = new MemoryDisk({ size: 1 << 20, manual: true });
      const r = onRealRing(16, disk);
      readChain(r, 0, 0);
      r.mock.publish(0);
      r.device.queueNotify(0);
      readChain(r, 4, 8);
      r.mock.publish(4); // no notification: suppressed
      await sleep(SUPPRESS_LIMIT_MS + 30);
      // The slow request still holds; the one behind it was picked up by the timer anyway.
      expect(disk.held.length).toBe(2);
      expect(r.device.inFlight).toBe(2);
      expect(r.mock.usedFlags & NO_NOTIFY).toBe(0);
      disk.held[1]!.release();
      await tick();
      expect(r.used().map((u) => u.id)).toEqual([4]);
      disk.held[0]!.release();
      await r.device.drain();
      expect(r.used().map((u) => u.id)).toEqual([4, 0]);
      expect(r.needsReset).toEqual([]);
    });

    it('2.7.10: with every request completed the device re-enables notifications and re-checks the ring (no request is stranded)', async () => {
      const r = onRealRing(16);
      for (let round = 0; round < 20; round++) {
        const statuses = [0, 4, 8].map((head, i) => readChain(r, head, round * 3 + i));
        r.mock.publish(0, 4);
        r.device.queueNotify(0);
        r.mock.publish(8); // raced in while the first two were in flight, never notified
        await r.device.drain();
        await tick();
        expect(statuses.map((s) => r.mock.memory.readU8(s))).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
        expect(r.mock.usedFlags & NO_NOTIFY).toBe(0);
        expect(r.device.inFlight).toBe(0);
      }
      expect(r.mock.usedIdx).toBe(60);
      expect(r.device.metrics.notifications).toBe(20);
    });

    it('a device reset while suppressed cancels the suppression timer: nothing touches the old ring', async () => {
      const disk = new MemoryDisk({ size: 1 << 20, manual: true });
      const r = onRealRing(16, disk);
      readChain(r, 0, 0);
      r.mock.publish(0);
      r.device.queueNotify(0);
      r.device.reset();
      readChain(r, 4, 8);
      r.mock.publish(4);
      await sleep(SUPPRESS_LIMIT_MS + 30);
      expect(disk.held.length).toBe(1); // head 4 never started
      disk.held[0]!.release();
      await r.device.drain();
      await tick();
      expect(r.used()).toEqual([]);
    });
  });
});
