import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import { RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE, VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_USED, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { PackedRingBuilder } from '../testing/packed-ring-builder.js';
import { createPackedQueuePair } from '../testing/packed-queue-pair.js';
import { PackedDriverQueue } from './driver-queue.js';
import { packedQueueLayout } from './layout.js';

const USED_1 = VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED; // a used descriptor in lap 1

/** A driver alone, with a hand-played device writing used descriptors. */
function driverOnly(size: number, features = {}) {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  const layout = packedQueueLayout(size, 0x1000);
  const driver = new PackedDriverQueue<string>(layout, { memory, features, index: 2 });
  const ring = new PackedRingBuilder(memory, layout);
  return { memory, layout, driver, ring };
}

describe('PackedDriverQueue', () => {
  it('2.8.21: writes the descriptors of a list in ring order with NEXT, WRITE, the id, and the head made available last', () => {
    const { driver, ring } = driverOnly(4);
    driver.add([{ address: 0x10000, length: 16 }], [{ address: 0x20000, length: 512 }, { address: 2 ** 40, length: 1 }], 'a');
    expect(ring.read(0)).toEqual({ address: 0x10000n, length: 16, id: 0, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_NEXT });
    expect(ring.read(1)).toEqual({ address: 0x20000n, length: 512, id: 0, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE });
    expect(ring.read(2)).toEqual({ address: 2n ** 40n, length: 1, id: 0, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_WRITE });
    expect(driver.freeCount).toBe(1);
    // The next list wraps: slot 3 in lap 1, slot 0 in lap 0 (AVAIL clear, USED set).
    expect(() => driver.add([{ address: 0x10000, length: 1 }, { address: 0x10000, length: 1 }], [], 'b')).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
  });

  it('2.8.6: buffer ids are distinct from ring positions and reused as the device returns them', () => {
    const { driver, ring } = driverOnly(4);
    driver.add([{ address: 0x10000, length: 1 }], [], 'a'); // slot 0, id 0
    driver.add([{ address: 0x10000, length: 1 }], [], 'b'); // slot 1, id 1
    // The device completes b first: used descriptor at slot 0 names id 1.
    ring.write(0, { address: 0, length: 0, id: 1, flags: USED_1, raw: true });
    expect(driver.getUsed()).toEqual({ token: 'b', length: 0 });
    driver.add([{ address: 0x10000, length: 1 }], [], 'c'); // slot 2, id 1 again
    expect(ring.read(2).id).toBe(1);
    ring.write(1, { address: 0, length: 0, id: 0, flags: USED_1, raw: true });
    expect(driver.getUsed()).toEqual({ token: 'a', length: 0 });
  });

  it('2.8.3: "Element Length is reserved for used descriptors without the VIRTQ_DESC_F_WRITE flag, and is ignored by drivers"', () => {
    const { driver, ring } = driverOnly(4);
    driver.add([], [{ address: 0x10000, length: 100 }], 'a');
    ring.write(0, { address: 0, length: 77, id: 0, flags: USED_1, raw: true });
    expect(driver.getUsed()).toEqual({ token: 'a', length: 0 });
  });

  it('getUsed rejects an id the driver did not make available (fatal: INVALID_USED_ELEMENT)', () => {
    const { driver, ring } = driverOnly(4);
    driver.add([{ address: 0x10000, length: 1 }], [], 'a');
    ring.write(0, { address: 0, length: 0, id: 3, flags: USED_1, raw: true });
    expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT', fatal: true }));
    expect(driver.broken).toBe(true);
    expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'QUEUE_BROKEN' }));
    expect(() => driver.add([{ address: 0, length: 1 }], [], 'x')).toThrow(expect.objectContaining({ code: 'QUEUE_BROKEN' }));
    expect(driver.detachUnused()).toEqual(['a']);
    expect(driver.broken).toBe(false);
  });

  it('getUsed rejects a length past the writable part of the buffer, and an id >= size', () => {
    const first = driverOnly(4);
    first.driver.add([{ address: 0x10000, length: 1 }], [{ address: 0x20000, length: 8 }], 'a');
    first.ring.write(0, { address: 0, length: 9, id: 0, flags: USED_1 | VIRTQ_DESC_F_WRITE, raw: true });
    expect(() => first.driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT' }));
    const second = driverOnly(4);
    second.driver.add([{ address: 0x10000, length: 1 }], [], 'a');
    second.ring.write(0, { address: 0, length: 0, id: 0xffff, flags: USED_1, raw: true });
    expect(() => second.driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT' }));
  });

  it('2.8.8: with IN_ORDER a used id names the end of a batch; an id not in flight is rejected', () => {
    const { driver, ring } = driverOnly(8, { inOrder: true });
    for (const token of ['a', 'b', 'c']) driver.add([{ address: 0x10000, length: 1 }], [{ address: 0x20000, length: 4 }], token);
    ring.write(0, { address: 0, length: 3, id: 1, flags: USED_1 | VIRTQ_DESC_F_WRITE, raw: true }); // a and b
    expect(driver.getUsed()).toEqual({ token: 'a', length: 4 }); // "used ... completely"
    expect(driver.hasUsed()).toBe(true);
    expect(driver.getUsed()).toEqual({ token: 'b', length: 3 });
    expect(driver.getUsed()).toBeNull();
    driver.add([{ address: 0x10000, length: 1 }], [], 'd'); // id 1 again (the last freed), after c (id 2)
    ring.write(4, { address: 0, length: 0, id: 0, flags: USED_1, raw: true }); // id 0 is no longer in flight
    expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT' }));
    expect(driver.detachUnused()).toEqual(['c', 'd']); // add order
  });

  it('2.8.7: uses an indirect table for buffers of at least indirectThreshold segments, or when the ring is too full', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
    const layout = packedQueueLayout(4, 0x1000);
    const driver = new PackedDriverQueue<string>(layout, {
      memory,
      features: { indirect: true },
      indirectArea: { address: 0x8000, maxDescriptors: 4 },
      indirectThreshold: 3,
    });
    const ring = new PackedRingBuilder(memory, layout);
    const seg = { address: 0x10000, length: 8 };
    driver.add([seg, seg], [], 'two'); // below the threshold: two ring slots
    expect(driver.freeCount).toBe(2);
    driver.add([seg, seg], [{ address: 0x20000, length: 8 }], 'three'); // a table in one slot
    expect(driver.freeCount).toBe(1);
    const head = ring.read(2);
    expect(head.flags).toBe(VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_INDIRECT);
    expect(head.length).toBe(48);
    expect(head.address).toBe(BigInt(0x8000 + head.id * 4 * 16));
    expect(memory.readU16(Number(head.address) + 2 * 16 + 14)).toBe(VIRTQ_DESC_F_WRITE);
    driver.add([seg, seg], [], 'squeezed'); // 2 segments, 1 free slot: goes indirect
    expect(driver.freeCount).toBe(0);
    expect(() => driver.add([seg, seg, seg], [], 'x')).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    expect(() => driver.add([seg, seg, seg, seg, seg], [], 'x')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' })); // never fits
  });

  it('a bad segment or a total past 2^32 - 1 is INVALID_ARGUMENT and publishes nothing; the queue stays usable', () => {
    for (const indirect of [false, true]) {
      const { driver, device, dataAddress } = createPackedQueuePair<string>({ size: 4, features: { indirect } });
      const ok = { address: dataAddress, length: 8 };
      expect(() => driver.add([ok], [{ address: dataAddress, length: -1 }], 'x')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => driver.add([ok, { address: 1.5, length: 1 }], [], 'x')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => driver.add([{ address: 0, length: 0xffffffff }], [{ address: 0, length: 1 }], 'x')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => driver.add([{ address: 2 ** 53, length: 1 }], [], 'x')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(driver.freeCount).toBe(4);
      expect(device.pop()).toBeNull();
      driver.add([ok], [], 'good');
      const chain = device.pop()!;
      expect(chain.readable).toEqual([ok]);
      // Nothing of the failed buffers after the head may look available.
      expect(device.pop()).toBeNull();
      device.pushUsed(chain.head, 0);
      expect(driver.getUsed()).toEqual({ token: 'good', length: 0 });
      driver.add([ok], [ok, ok], 'next');
      expect(device.pop()!.descriptorCount).toBe(indirect ? 1 : 3);
    }
  });

  it('rejects an indirect area that is misaligned, outside memory, or overlapping the ring', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]);
    const layout = packedQueueLayout(4, 0x1000);
    const make = (address: number, maxDescriptors = 4) =>
      () => new PackedDriverQueue(layout, { memory, features: { indirect: true }, indirectArea: { address, maxDescriptors } });
    expect(make(0x8008)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(make(0xfff0)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(make(0x1000)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(make(0x8000, 1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(make(0x8000)).not.toThrow();
  });

  it('2.8.10: kickPrepare follows the device event suppression structure', () => {
    const { driver, memory, layout } = driverOnly(4, { eventIdx: true });
    const setDeviceEvent = (flags: number, off: number, wrap: boolean) => memory.writeU32(layout.deviceEvent, ((flags << 16) | off | (wrap ? 0x8000 : 0)) >>> 0);
    expect(driver.kickPrepare()).toBe(false); // nothing added
    driver.add([{ address: 0x10000, length: 1 }], [], 'a');
    expect(driver.kickPrepare()).toBe(true); // ENABLE (zeroed structure)
    setDeviceEvent(RING_EVENT_FLAGS_DISABLE, 0, false);
    driver.add([{ address: 0x10000, length: 1 }], [], 'b');
    expect(driver.kickPrepare()).toBe(false);
    setDeviceEvent(RING_EVENT_FLAGS_DESC, 3, true); // wake me when slot 3 of lap 1 is made available
    driver.add([{ address: 0x10000, length: 1 }], [], 'c'); // slot 2
    expect(driver.kickPrepare()).toBe(false);
    driver.add([{ address: 0x10000, length: 1 }], [], 'd'); // slot 3
    expect(driver.kickPrepare()).toBe(true);
  });

  it('enableCallback publishes DESC at the next used position with EVENT_IDX and reports pending completions', () => {
    const { driver, device, dataAddress, memory, layout } = createPackedQueuePair<string>({ size: 3, features: { eventIdx: true } });
    driver.disableCallback();
    expect(memory.readU16(layout.driverEvent + 2)).toBe(RING_EVENT_FLAGS_DISABLE);
    driver.add([{ address: dataAddress, length: 1 }], [], 'a');
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(false);
    expect(driver.enableCallback()).toBe(false); // one is pending: poll, do not sleep
    expect(driver.getUsed()?.token).toBe('a');
    expect(driver.enableCallback()).toBe(true);
    expect(memory.readU16(layout.driverEvent + 2)).toBe(RING_EVENT_FLAGS_DESC);
    expect(memory.readU16(layout.driverEvent)).toBe(1 | 0x8000);
    driver.add([{ address: dataAddress, length: 1 }], [], 'b');
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(true);
  });
});
