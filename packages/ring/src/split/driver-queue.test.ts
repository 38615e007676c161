import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { RingError } from '../errors.js';
import { MockSplitQueue, createSplitRing } from '../testing/index.js';
import { SplitDeviceQueue } from './device-queue.js';
import { SplitDriverQueue } from './driver-queue.js';
import { splitQueueLayout } from './layout.js';

/** Reads descriptor `i` of the ring's table raw. */
function descriptor(memory: GuestMemory, descTable: number, i: number) {
  const a = descTable + 16 * i;
  return { address: Number(memory.readU64(a)), length: memory.readU32(a + 8), flags: memory.readU16(a + 12), next: memory.readU16(a + 14) };
}

describe('SplitDriverQueue (VIRTIO 1.3 §2.7.13)', () => {
  it('2.7.13.1: writes a chain readable-then-writable linked with NEXT, puts the head in the ring, then moves idx', () => {
    const { memory, layout, driver, dataAddress } = createSplitRing<string>({ size: 8 });
    driver.add([{ address: dataAddress, length: 16 }], [{ address: dataAddress + 16, length: 512 }, { address: dataAddress + 1024, length: 1 }], 'a');
    const mock = new MockSplitQueue({ size: 8, memory });
    expect(mock.availIdx).toBe(1);
    const head = memory.readU16(layout.availRing + 4);
    const d0 = descriptor(memory, layout.descTable, head);
    expect(d0).toMatchObject({ address: dataAddress, length: 16, flags: VIRTQ_DESC_F_NEXT });
    const d1 = descriptor(memory, layout.descTable, d0.next);
    expect(d1).toMatchObject({ address: dataAddress + 16, length: 512, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE });
    expect(descriptor(memory, layout.descTable, d1.next)).toMatchObject({ address: dataAddress + 1024, length: 1, flags: VIRTQ_DESC_F_WRITE });
    expect(driver.freeCount).toBe(5);
  });

  it('round-trips through the device with the used length, and frees the descriptors', () => {
    const { driver, device, dataAddress } = createSplitRing<string>({ size: 4 });
    driver.add([{ address: dataAddress, length: 8 }], [{ address: dataAddress + 8, length: 8 }], 'x');
    expect(driver.getUsed()).toBeNull();
    const chain = device.pop()!;
    device.pushUsed(chain.head, 5);
    expect(driver.getUsed()).toEqual({ token: 'x', length: 5 });
    expect(driver.freeCount).toBe(4);
    expect(driver.getUsed()).toBeNull();
  });

  it('throws QUEUE_FULL when the free list is short, and INVALID_ARGUMENT for chains that can never fit or are malformed', () => {
    const { driver, dataAddress } = createSplitRing<number>({ size: 4 });
    const seg = { address: dataAddress, length: 8 };
    driver.add([seg, seg, seg], [], 1);
    expect(() => driver.add([seg, seg], [], 2)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    expect(() => driver.add([seg, seg, seg, seg, seg], [], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([], [], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([{ address: -1, length: 1 }], [], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([{ address: 0, length: 2 ** 32 }], [], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(driver.freeCount).toBe(1);
    driver.add([seg], [], 3);
    expect(driver.freeCount).toBe(0);
  });

  it('reports a malformed segment as INVALID_ARGUMENT before QUEUE_FULL, so a caller waiting for room on QUEUE_FULL never waits for a chain that cannot be added', () => {
    const { driver, dataAddress } = createSplitRing<number>({ size: 2 });
    const seg = { address: dataAddress, length: 8 };
    driver.add([seg, seg], [], 1);
    expect(() => driver.add([seg], [], 2)).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    expect(() => driver.add([{ address: 0.5, length: 8 }], [], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([seg], [{ address: 0, length: -1 }], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([{ address: 0, length: 2 ** 32 - 1 }], [{ address: 0, length: 1 }], 2)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('a rejected add (one-pass checks) leaves the queue exactly as it was: free count, avail idx and later chains', () => {
    const { driver, device, dataAddress } = createSplitRing<number>({ size: 8 });
    const seg = { address: dataAddress, length: 8 };
    // The bad segment comes after good ones that were already written into free descriptors.
    expect(() => driver.add([seg, seg], [seg, { address: 2 ** 53, length: 8 }], 1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([seg], [{ address: 0, length: 2 ** 32 - 1 }, seg], 1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => driver.add([{ address: Number.NaN, length: 8 }], [], 1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(driver.freeCount).toBe(8);
    expect(device.pop()).toBeNull();
    driver.add([seg], [{ address: dataAddress + 64, length: 16 }], 2);
    const chain = device.pop()!;
    expect(chain.readable).toEqual([seg]);
    expect(chain.writable).toEqual([{ address: dataAddress + 64, length: 16 }]);
    device.pushUsed(chain.head, 16);
    expect(driver.getUsed()).toEqual({ token: 2, length: 16 });
    expect(driver.freeCount).toBe(8);
  });

  it('2.7.5.3: with INDIRECT_DESC, a long chain takes one descriptor and an indirect table the device flattens', () => {
    const { memory, layout, driver, device, dataAddress } = createSplitRing<number>({ size: 8, features: { indirect: true }, indirectMaxDescriptors: 8 });
    const segs = Array.from({ length: 6 }, (_, k) => ({ address: dataAddress + 64 * k, length: 64 }));
    driver.add(segs.slice(0, 2), segs.slice(2), 7);
    expect(driver.freeCount).toBe(7);
    const head = memory.readU16(layout.availRing + 4);
    const d = descriptor(memory, layout.descTable, head);
    expect(d.flags).toBe(VIRTQ_DESC_F_INDIRECT);
    expect(d.length).toBe(6 * 16);
    const chain = device.pop()!;
    expect(chain.readable).toEqual(segs.slice(0, 2));
    expect(chain.writable).toEqual(segs.slice(2));
    expect(chain.descriptorCount).toBe(1);
    device.pushUsed(chain.head, 256);
    expect(driver.getUsed()).toEqual({ token: 7, length: 256 });
    expect(driver.freeCount).toBe(8);
  });

  it('goes indirect only from the threshold, or when the free list is too short; a single segment stays direct', () => {
    const { driver, device, dataAddress } = createSplitRing<number>({ size: 4, features: { indirect: true }, indirectMaxDescriptors: 4, indirectThreshold: 4 });
    const seg = { address: dataAddress, length: 8 };
    driver.add([seg, seg, seg], [], 1); // 3 < threshold: direct
    expect(driver.freeCount).toBe(1);
    driver.add([seg, seg], [], 2); // does not fit directly: indirect
    expect(driver.freeCount).toBe(0);
    expect(device.pop()!.descriptorCount).toBe(3);
    expect(device.pop()!.descriptorCount).toBe(1);
  });

  it('2.7.13.4: kickPrepare notifies unless the device set NO_NOTIFY, and only when something was added', () => {
    const { driver, device, dataAddress } = createSplitRing<number>({ size: 8 });
    expect(driver.kickPrepare()).toBe(false);
    driver.add([{ address: dataAddress, length: 8 }], [], 1);
    expect(driver.kickPrepare()).toBe(true);
    expect(driver.kickPrepare()).toBe(false);
    device.disableNotification();
    driver.add([{ address: dataAddress, length: 8 }], [], 2);
    expect(driver.kickPrepare()).toBe(false);
  });

  it('2.7.10: with EVENT_IDX, kickPrepare notifies only when avail idx passes avail_event', () => {
    const { driver, device, dataAddress } = createSplitRing<number>({ size: 8, features: { eventIdx: true } });
    const seg = { address: dataAddress, length: 8 };
    driver.add([seg], [], 1);
    expect(driver.kickPrepare()).toBe(true); // avail_event 0 passed
    device.pop(); // device publishes avail_event = 1
    driver.add([seg], [], 2);
    driver.add([seg], [], 3);
    expect(driver.kickPrepare()).toBe(true); // 1 is in [1, 3)
    driver.add([seg], [], 4);
    expect(driver.kickPrepare()).toBe(false); // device has not caught up: no new kick
  });

  it('2.7.10: disable/enableCallback set NO_INTERRUPT or used_event, and enable reports completions that raced in', () => {
    for (const eventIdx of [false, true]) {
      const { memory, driver, device, dataAddress } = createSplitRing<number>({ size: 8, features: { eventIdx } });
      const mock = new MockSplitQueue({ size: 8, memory });
      driver.disableCallback();
      if (!eventIdx) expect(mock.availFlags).toBe(VIRTQ_AVAIL_F_NO_INTERRUPT);
      driver.add([], [{ address: dataAddress, length: 8 }], 1);
      device.pushUsed(device.pop()!.head, 8);
      expect(device.needsNotification()).toBe(false);
      expect(driver.enableCallback()).toBe(false); // pending: poll, do not sleep
      expect(driver.getUsed()?.token).toBe(1);
      expect(driver.enableCallback()).toBe(true);
      if (eventIdx) expect(mock.usedEvent).toBe(1);
      else expect(mock.availFlags).toBe(0);
      driver.add([], [{ address: dataAddress, length: 8 }], 2);
      device.pushUsed(device.pop()!.head, 8);
      expect(device.needsNotification()).toBe(true);
    }
  });

  it('a hostile device: a used id not in flight, out of range, or a length beyond the buffer breaks the queue (INVALID_USED_ELEMENT)', () => {
    const cases = [
      { id: 1, length: 0 }, // not in flight
      { id: 9999, length: 0 }, // out of range
      { id: 0, length: 17 }, // longer than the writable part
    ];
    for (const bad of cases) {
      const { memory, layout, driver, dataAddress } = createSplitRing<number>({ size: 8 });
      driver.add([{ address: dataAddress, length: 8 }], [{ address: dataAddress, length: 16 }], 42);
      memory.writeU32(layout.usedRing + 4, bad.id);
      memory.writeU32(layout.usedRing + 8, bad.length);
      memory.atomicStoreU16(layout.usedRing + 2, 1);
      expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT', fatal: true }));
      expect(driver.broken).toBe(true);
      expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'QUEUE_BROKEN' }));
      expect(() => driver.add([{ address: dataAddress, length: 8 }], [], 1)).toThrow(RingError);
      expect(driver.detachUnused()).toEqual([42]);
    }
  });

  it('a hostile device: used idx running ahead of the buffers in flight is refused', () => {
    const { memory, layout, driver, dataAddress } = createSplitRing<number>({ size: 8 });
    driver.add([{ address: dataAddress, length: 8 }], [], 1);
    memory.atomicStoreU16(layout.usedRing + 2, 5);
    expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT' }));
  });

  it('detachUnused returns every token not used, frees all descriptors; reset() then restarts the ring', () => {
    const { driver, device, dataAddress } = createSplitRing<string>({ size: 8 });
    for (const t of ['a', 'b', 'c']) driver.add([{ address: dataAddress, length: 8 }, { address: dataAddress, length: 8 }], [], t);
    device.pushUsed(device.pop()!.head, 0);
    expect(driver.getUsed()?.token).toBe('a');
    expect(() => driver.reset()).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(driver.detachUnused().sort()).toEqual(['b', 'c']);
    expect(driver.freeCount).toBe(8);
    driver.reset();
    device.reset();
    driver.add([{ address: dataAddress, length: 8 }], [], 'd');
    expect(device.pop()?.readable).toHaveLength(1);
  });

  it('2.7.9: with IN_ORDER, one used entry for a batch returns every buffer in order: skipped ones "used completely", the last with its length', () => {
    const { driver, device, dataAddress } = createSplitRing<number>({ size: 8, features: { inOrder: true } });
    for (let t = 0; t < 6; t++) driver.add([], [{ address: dataAddress, length: 8 }], t);
    const heads = [0, 1, 2].map(() => device.pop()!.head);
    device.pushUsedBatch(heads.map((head, k) => ({ head, length: k === 2 ? 5 : 8 })));
    expect([driver.getUsed(), driver.getUsed(), driver.getUsed(), driver.getUsed()]).toEqual([
      { token: 0, length: 8 },
      { token: 1, length: 8 },
      { token: 2, length: 5 },
      null,
    ]);
    // A partial length in the middle of a batch: two runs, exact lengths.
    const more = [0, 1, 2].map(() => device.pop()!.head);
    device.pushUsedBatch(more.map((head, k) => ({ head, length: k === 0 ? 2 : 8 })));
    expect([driver.getUsed(), driver.getUsed(), driver.getUsed(), driver.getUsed()]).toEqual([
      { token: 3, length: 2 },
      { token: 4, length: 8 },
      { token: 5, length: 8 },
      null,
    ]);
    expect(driver.freeCount).toBe(8);
  });

  it('2.7.9: with IN_ORDER, a used id that is not in flight, or a batch longer than used idx moved, is refused', () => {
    const { memory, layout, driver, dataAddress } = createSplitRing<number>({ size: 8, features: { inOrder: true } });
    for (let t = 0; t < 3; t++) driver.add([], [{ address: dataAddress, length: 8 }], t);
    // The device claims a batch ending at the third buffer but moves used idx by only 2.
    memory.writeU32(layout.usedRing + 4, 2);
    memory.writeU32(layout.usedRing + 8, 8);
    memory.atomicStoreU16(layout.usedRing + 2, 2);
    expect(() => driver.getUsed()).toThrow(expect.objectContaining({ code: 'INVALID_USED_ELEMENT' }));
  });

  it('validates its options: the indirect area inside one region and a sane table size', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]);
    const layout = splitQueueLayout(8, 0);
    expect(() => new SplitDriverQueue(layout, { memory, features: { indirect: true }, indirectArea: { address: 0xfff0, maxDescriptors: 8 } })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => new SplitDriverQueue(layout, { memory, features: { indirect: true }, indirectArea: { address: 0x8000, maxDescriptors: 9 } })).toThrow(RingError);
    expect(() => new SplitDriverQueue(layout, { memory, features: { indirect: true }, indirectArea: { address: 0x8008, maxDescriptors: 4 } })).toThrow(RingError);
    expect(() => new SplitDriverQueue(splitQueueLayout(8, 0x20000), { memory })).toThrow(expect.objectContaining({ code: 'INVALID_LAYOUT' }));
  });

  it('carries addresses above 4 GiB (both le32 halves) through direct and indirect descriptors', () => {
    const memory = GuestMemory.create([
      { guestAddress: 0, size: 1 << 20 },
      { guestAddress: 2 ** 40, size: 1 << 16 },
      { guestAddress: 2 ** 52, size: 1 << 16 },
    ]);
    const layout = splitQueueLayout(8, 0);
    for (const indirect of [false, true]) {
      const driver = new SplitDriverQueue<number>(layout, { memory, features: { indirect }, indirectArea: { address: 2 ** 40 + 4096, maxDescriptors: 4 } });
      const device = new SplitDeviceQueue(layout, { memory, features: { indirect } });
      const readable = [{ address: 2 ** 40 + 17, length: 3 }];
      const writable = [{ address: 2 ** 52 + 1, length: 100 }, { address: 0xffff_fff0 - 0xfff0_0000, length: 8 }];
      driver.add(readable, writable, 1);
      const chain = device.pop()!;
      expect(chain.readable).toEqual(readable);
      expect(chain.writable).toEqual(writable);
      expect(chain.descriptorCount).toBe(indirect ? 1 : 3);
    }
  });
});
