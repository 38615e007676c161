import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import { RingError } from '../errors.js';
import { PackedRingBuilder } from '../testing/packed-ring-builder.js';
import { createPackedQueuePair } from '../testing/packed-queue-pair.js';
import type { QueueFeatures } from '../types.js';
import { PackedDeviceQueue } from './device-queue.js';
import { PackedDriverQueue } from './driver-queue.js';
import { packedQueueLayout } from './layout.js';

function handBuilt(size: number, features: Partial<QueueFeatures> = {}) {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  const layout = packedQueueLayout(size, 0x1000);
  const device = new PackedDeviceQueue(layout, { memory, features });
  const builder = new PackedRingBuilder(memory, layout);
  return { memory, layout, device, builder };
}

describe('PackedDeviceQueue', () => {
  it('2.8.1: a descriptor is available when AVAIL equals the wrap counter and USED does not', () => {
    const { device, builder } = handBuilt(4);
    expect(device.pop()).toBeNull();
    builder.write(0, { address: 0x10000, length: 8, id: 2, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED, raw: true });
    expect(device.hasAvailable()).toBe(false);
    expect(device.pop()).toBeNull();
    builder.write(0, { address: 0x10000, length: 8, id: 2 });
    expect(device.hasAvailable()).toBe(true);
    const chain = device.pop()!;
    expect(chain).toMatchObject({ head: 2, readableLength: 8, writableLength: 0, descriptorCount: 1 });
    expect(chain.readable).toEqual([{ address: 0x10000, length: 8 }]);
  });

  it('2.8.6: "Buffer ID is included in the last descriptor in the list"; the used descriptor skips the whole list', () => {
    const { device, builder } = handBuilt(8);
    builder.publish([
      { address: 0x10000, length: 16, id: 7, flags: VIRTQ_DESC_F_NEXT },
      { address: 0x11000, length: 100, id: 7, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE },
      { address: 0x12000, length: 1, id: 5, flags: VIRTQ_DESC_F_WRITE },
    ]);
    builder.publish([{ address: 0x13000, length: 4, id: 1 }]);
    const a = device.pop()!;
    expect(a.head).toBe(5);
    expect(a.descriptorCount).toBe(3);
    expect(a.writable).toEqual([{ address: 0x11000, length: 100 }, { address: 0x12000, length: 1 }]);
    const b = device.pop()!;
    expect(b.head).toBe(1);
    // Complete out of order: b first, at slot 0; a next, at slot 1 (b took one slot).
    device.pushUsed(1, 0);
    device.pushUsed(5, 101);
    expect(builder.read(0)).toMatchObject({ id: 1, length: 0, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED });
    expect(builder.read(1)).toMatchObject({ id: 5, length: 101, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED | VIRTQ_DESC_F_WRITE });
    expect(device.saveState()).toMatchObject({ nextAvail: 4, nextUsed: 4, inFlight: [] });
  });

  it('2.8.1: both wrap counters toggle after the last slot; a queue of size 3 (not a power of two)', () => {
    const { driver, device, dataAddress } = createPackedQueuePair<number>({ size: 3 });
    for (let i = 0; i < 20; i++) {
      driver.add([{ address: dataAddress, length: 1 }], [{ address: dataAddress + 64, length: 2 }], i);
      const chain = device.pop()!;
      expect(chain.descriptorCount).toBe(2);
      device.pushUsed(chain.head, 2);
      expect(driver.getUsed()).toEqual({ token: i, length: 2 });
    }
    const state = device.saveState();
    expect(state.nextAvail).toBe(40 % 3);
    expect(state.availWrapCounter).toBe(Math.floor(40 / 3) % 2 === 0);
  });

  it('pushUsed rejects an id the device does not hold and a length past the writable part', () => {
    const { driver, device, dataAddress } = createPackedQueuePair<number>({ size: 4 });
    driver.add([], [{ address: dataAddress, length: 10 }], 0);
    const chain = device.pop()!;
    expect(() => device.pushUsed(3, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(() => device.pushUsed(chain.head, 11)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(() => device.pushUsed(4, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    device.pushUsed(chain.head, 10);
    expect(() => device.pushUsed(chain.head, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(device.broken).toBe(false);
  });

  it('2.8.8: with IN_ORDER one used descriptor stands for a batch; the driver returns every buffer', () => {
    const { driver, device, dataAddress, memory, layout } = createPackedQueuePair<number>({ size: 10, features: { inOrder: true } });
    for (let i = 0; i < 5; i++) driver.add([{ address: dataAddress, length: 4 }], [{ address: dataAddress + 64 * i, length: 32 }], i);
    const chains = [0, 1, 2, 3, 4].map(() => device.pop()!);
    expect(() => device.pushUsed(chains[1]!.head, 32)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    // Lengths 32, 32, 7, 32, 5: descriptors for element 2 (short) and 4 (last) only.
    device.pushUsedBatch(chains.map((c, i) => ({ head: c.head, length: i === 2 ? 7 : i === 4 ? 5 : 32 })));
    const builder = new PackedRingBuilder(memory, layout);
    expect(builder.read(0)).toMatchObject({ id: chains[2]!.head, length: 7 });
    expect(builder.read(6)).toMatchObject({ id: chains[4]!.head, length: 5 });
    const got = [];
    for (let u = driver.getUsed(); u !== null; u = driver.getUsed()) got.push(u);
    expect(got).toEqual([
      { token: 0, length: 32 },
      { token: 1, length: 32 },
      { token: 2, length: 7 },
      { token: 3, length: 32 },
      { token: 4, length: 5 },
    ]);
    expect(driver.freeCount).toBe(10);
  });

  it('2.8.7: indirect descriptors on both sides', () => {
    const { driver, device, dataAddress, memory } = createPackedQueuePair<string>({ size: 2, features: { indirect: true }, maxIndirect: 4 });
    const readable = [0, 1, 2].map((i) => ({ address: dataAddress + 16 * i, length: 16 }));
    driver.add(readable, [{ address: dataAddress + 0x100, length: 64 }], 'x');
    expect(driver.freeCount).toBe(1);
    const chain = device.pop()!;
    expect(chain.descriptorCount).toBe(1);
    expect(chain.readable).toEqual(readable);
    expect(chain.writable).toEqual([{ address: dataAddress + 0x100, length: 64 }]);
    memory.fill(dataAddress + 0x100, 64, 1);
    device.pushUsed(chain.head, 64);
    expect(driver.getUsed()).toEqual({ token: 'x', length: 64 });
  });

  it('2.8.10: needsNotification follows ENABLE, DISABLE and DESC (off_wrap with the wrap bit)', () => {
    const { driver, device, dataAddress, memory, layout } = createPackedQueuePair<number>({ size: 4, features: { eventIdx: true } });
    const setDriverEvent = (flags: number, off: number, wrap: boolean) => memory.writeU32(layout.driverEvent, ((flags << 16) | off | (wrap ? 0x8000 : 0)) >>> 0);
    // One buffer through the ring with the driver's event word set just before the device
    // uses it; returns the device's verdict (the driver's getUsed rewrites the word afterwards).
    const roundTrip = (i: number, flags: number, off: number, wrap: boolean): boolean => {
      driver.add([{ address: dataAddress, length: 1 }], [], i);
      const head = device.pop()!.head;
      setDriverEvent(flags, off, wrap);
      device.pushUsed(head, 0);
      const verdict = device.needsNotification();
      expect(driver.getUsed()?.token).toBe(i);
      return verdict;
    };
    expect(device.needsNotification()).toBe(false); // nothing pushed
    expect(roundTrip(0, RING_EVENT_FLAGS_ENABLE, 0, false)).toBe(true);
    expect(roundTrip(1, RING_EVENT_FLAGS_DISABLE, 0, false)).toBe(false);
    // Used position is 2 (wrap 1). Ask for slot 3 in this lap: slot 2 does not trigger, slot 3 does.
    expect(roundTrip(2, RING_EVENT_FLAGS_DESC, 3, true)).toBe(false);
    expect(roundTrip(3, RING_EVENT_FLAGS_DESC, 3, true)).toBe(true);
    // Now at position 0, wrap 0. An event at slot 0 with wrap 1 is in the past lap: no.
    expect(roundTrip(4, RING_EVENT_FLAGS_DESC, 0, true)).toBe(false);
    // Slot 1 with wrap 0 is this lap: yes.
    expect(roundTrip(5, RING_EVENT_FLAGS_DESC, 1, false)).toBe(true);
  });

  it('2.8.10: enableNotification re-checks for buffers published meanwhile (the race)', () => {
    const { driver, device, dataAddress, memory, layout } = createPackedQueuePair<number>({ size: 4, features: { eventIdx: true } });
    device.disableNotification();
    expect(memory.readU16(layout.deviceEvent + 2)).toBe(RING_EVENT_FLAGS_DISABLE);
    driver.add([{ address: dataAddress, length: 1 }], [], 1);
    expect(driver.kickPrepare()).toBe(false);
    expect(device.enableNotification()).toBe(true); // must poll again, not sleep
    expect(memory.readU16(layout.deviceEvent + 2)).toBe(RING_EVENT_FLAGS_DESC);
    device.pushUsed(device.pop()!.head, 0);
    expect(device.enableNotification()).toBe(false);
    // The event now names slot 1 in lap 1: the next add must kick.
    expect(memory.readU16(layout.deviceEvent)).toBe(1 | 0x8000);
    driver.add([{ address: dataAddress, length: 1 }], [], 2);
    expect(driver.kickPrepare()).toBe(true);
  });

  it('saveState/restore round-trips mid-flight, across a wrap, with IN_ORDER order kept', () => {
    const { driver, device, dataAddress, memory, layout } = createPackedQueuePair<number>({ size: 7, features: { inOrder: true } });
    for (let i = 0; i < 4; i++) {
      driver.add([{ address: dataAddress, length: 1 }], [{ address: dataAddress + 8, length: 8 }], i);
      device.pushUsed(device.pop()!.head, 8);
      expect(driver.getUsed()?.token).toBe(i);
    }
    for (let i = 4; i < 7; i++) driver.add([{ address: dataAddress, length: 1 }], [{ address: dataAddress + 8, length: 8 }], i);
    device.pop();
    device.pop();
    const state = device.saveState();
    expect(state.inFlight.map((e) => e.descriptorCount)).toEqual([2, 2]);
    const restored = PackedDeviceQueue.restore(JSON.parse(JSON.stringify(state)) as typeof state, { memory });
    expect(restored.saveState()).toEqual(state);
    const third = restored.pop()!;
    restored.pushUsedBatch([...state.inFlight.map((e) => ({ head: e.id, length: 8 })), { head: third.head, length: 8 }]);
    expect([driver.getUsed()?.token, driver.getUsed()?.token, driver.getUsed()?.token, driver.getUsed()]).toEqual([4, 5, 6, null]);
    expect(layout.size).toBe(7);
  });

  it('reset forgets everything; a broken queue throws QUEUE_BROKEN until then', () => {
    const { device, builder } = handBuilt(4);
    builder.publish([{ address: 0x10000, length: 1, id: 9 }]);
    expect(() => device.pop()).toThrow(expect.objectContaining({ code: 'DESCRIPTOR_INDEX_OUT_OF_RANGE', fatal: true }));
    expect(device.broken).toBe(true);
    expect(device.hasAvailable()).toBe(false);
    expect(() => device.pop()).toThrow(expect.objectContaining({ code: 'QUEUE_BROKEN' }));
    device.reset();
    expect(device.broken).toBe(false);
    expect(() => device.pop()).toThrow(RingError);
  });

  it('detachUnused returns what the device never completed and re-initialises the ring', () => {
    const { driver, device, dataAddress } = createPackedQueuePair<string>({ size: 4 });
    driver.add([{ address: dataAddress, length: 1 }], [], 'a');
    driver.add([{ address: dataAddress, length: 1 }], [], 'b');
    device.pushUsed(device.pop()!.head, 0);
    expect(driver.getUsed()?.token).toBe('a');
    device.reset();
    expect(driver.detachUnused()).toEqual(['b']);
    expect(driver.freeCount).toBe(4);
    expect(device.pop()).toBeNull(); // zeroed ring: nothing stale looks available
    driver.add([{ address: dataAddress, length: 1 }], [], 'c');
    device.pushUsed(device.pop()!.head, 0);
    expect(driver.getUsed()?.token).toBe('c');
  });

  it('driver: QUEUE_FULL when the ring has no room; INVALID_ARGUMENT for an empty buffer', () => {
    const driverOnly = createPackedQueuePair<number>({ size: 2 });
    const d: PackedDriverQueue<number> = driverOnly.driver;
    expect(() => d.add([], [], 0)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    d.add([{ address: 0, length: 1 }], [], 0);
    expect(() => d.add([{ address: 0, length: 1 }, { address: 0, length: 1 }], [], 1)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    expect(() => d.add([{ address: 0, length: 1 }, { address: 0, length: 1 }, { address: 0, length: 1 }], [], 1)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});
