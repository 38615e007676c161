import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import { RingError } from '../errors.js';
import { MockSplitQueue } from '../testing/index.js';
import { SplitDeviceQueue } from './device-queue.js';
import { needEvent } from './ring-math.js';

function setup(size = 8, features = {}) {
  const mock = new MockSplitQueue({ size });
  const device = mock.createDevice(features);
  const header = mock.alloc(16);
  const data = mock.alloc(4096);
  const status = mock.alloc(1);
  return { mock, device, header, data, status };
}

describe('SplitDeviceQueue: pop and push (VIRTIO 1.3 §2.7.13)', () => {
  it('pops a chain as readable then writable segments with totals and head', () => {
    const { mock, device, header, data, status } = setup();
    mock.writeChain(2, [
      { address: header, length: 16 },
      { address: data, length: 4096, write: true },
      { address: status, length: 1, write: true },
    ]);
    mock.publish(2);
    expect(device.hasAvailable()).toBe(true);
    const chain = device.pop()!;
    expect(chain.head).toBe(2);
    expect(chain.readable).toEqual([{ address: header, length: 16 }]);
    expect(chain.writable).toEqual([
      { address: data, length: 4096 },
      { address: status, length: 1 },
    ]);
    expect(chain.readableLength).toBe(16);
    expect(chain.writableLength).toBe(4097);
    expect(chain.descriptorCount).toBe(3);
    expect(device.pop()).toBeNull();
    expect(device.hasAvailable()).toBe(false);
  });

  it('2.7.5.3.2: flattens an indirect table after direct descriptors and ignores WRITE on the table descriptor', () => {
    const { mock, device, header, data, status } = setup(8, { indirect: true });
    const table = mock.alloc(32);
    mock.writeTable(table, [
      { address: data, length: 512, flags: 2 | 1, next: 1 },
      { address: status, length: 1, flags: 2 },
    ]);
    mock.writeDescriptor(0, { address: header, length: 16, flags: 1, next: 1 });
    mock.writeDescriptor(1, { address: table, length: 32, flags: VIRTQ_DESC_F_INDIRECT | 2 });
    mock.publish(0);
    const chain = device.pop()!;
    expect(chain.readable).toEqual([{ address: header, length: 16 }]);
    expect(chain.writable).toEqual([
      { address: data, length: 512 },
      { address: status, length: 1 },
    ]);
    expect(chain.descriptorCount).toBe(2);
  });

  it('2.7.8.2: writes the used element, then used idx', () => {
    const { mock, device, data } = setup();
    mock.writeChain(0, [{ address: data, length: 64, write: true }]);
    mock.publish(0);
    const chain = device.pop()!;
    device.pushUsed(chain.head, 60);
    expect(mock.usedIdx).toBe(1);
    expect(mock.usedElement(0)).toEqual({ id: 0, length: 60 });
  });

  it('2.7.8.1: refuses a used length beyond the writable part, a head not in flight, a head twice', () => {
    const { mock, device, data } = setup();
    mock.writeChain(0, [{ address: data, length: 64, write: true }]);
    mock.publish(0);
    device.pop();
    expect(() => device.pushUsed(0, 65)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(() => device.pushUsed(1, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(() => device.pushUsed(-1, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(() => device.pushUsed(0.5, 0)).toThrow(RingError);
    device.pushUsed(0, 64);
    expect(() => device.pushUsed(0, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(mock.usedIdx).toBe(1);
  });

  it('pushUsedBatch writes every element with one used idx update, and validates the whole batch first', () => {
    const { mock, device, data } = setup();
    for (let i = 0; i < 3; i++) mock.writeDescriptor(i, { address: data, length: 8, flags: 2 });
    mock.publish(0, 1, 2);
    for (let i = 0; i < 3; i++) device.pop();
    expect(() => device.pushUsedBatch([{ head: 0, length: 1 }, { head: 0, length: 1 }])).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    expect(device.inFlight).toBe(3);
    expect(mock.usedIdx).toBe(0);
    device.pushUsedBatch([
      { head: 2, length: 3 },
      { head: 0, length: 1 },
    ]);
    expect(mock.usedIdx).toBe(2);
    expect([mock.usedElement(0), mock.usedElement(1)]).toEqual([
      { id: 2, length: 3 },
      { id: 0, length: 1 },
    ]);
    expect(device.inFlight).toBe(1);
  });

  it('2.7.9: with VIRTIO_F_IN_ORDER one used entry (the last head) stands for a batch; skipped buffers are "used completely"', () => {
    const { mock, device, data } = setup(8, { inOrder: true });
    for (let i = 0; i < 4; i++) mock.writeDescriptor(i, { address: data, length: 8, flags: 2 });
    mock.publish(0, 1, 2, 3);
    for (let i = 0; i < 4; i++) device.pop();
    expect(() => device.pushUsed(1, 0)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
    device.pushUsedBatch([
      { head: 0, length: 8 },
      { head: 1, length: 8 },
      { head: 2, length: 5 },
    ]);
    expect(mock.usedIdx).toBe(3);
    expect(mock.usedElement(0)).toEqual({ id: 2, length: 5 });
    device.pushUsed(3, 8);
    expect(mock.usedElement(3)).toEqual({ id: 3, length: 8 });
  });

  it('2.7.9: with VIRTIO_F_IN_ORDER a partially written buffer closes a run: its entry sits at the offset of the run\'s first buffer', () => {
    const { mock, device, data } = setup(8, { inOrder: true });
    for (let i = 0; i < 4; i++) mock.writeDescriptor(i, { address: data, length: 8, flags: 2 });
    mock.publish(0, 1, 2, 3);
    for (let i = 0; i < 4; i++) device.pop();
    device.pushUsedBatch([
      { head: 0, length: 8 },
      { head: 1, length: 3 },
      { head: 2, length: 8 },
      { head: 3, length: 8 },
    ]);
    expect(mock.usedIdx).toBe(4);
    expect(mock.usedElement(0)).toEqual({ id: 1, length: 3 });
    expect(mock.usedElement(2)).toEqual({ id: 3, length: 8 });
  });
});

describe('SplitDeviceQueue: notifications (VIRTIO 1.3 §2.7.7, §2.7.10)', () => {
  it('vring_need_event: true exactly when event is in [old, new) mod 2^16', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0x7fff }), (event, old, step) => {
        const newIdx = (old + step) & 0xffff;
        let inWindow = false;
        for (let k = 0; k < step; k++) if (((old + k) & 0xffff) === event) inWindow = true;
        expect(needEvent(event, newIdx, old)).toBe(inWindow);
      }),
      { numRuns: 300 },
    );
    expect(needEvent(0xffff, 0, 0xfffe)).toBe(true);
    expect(needEvent(0, 1, 0xffff)).toBe(true);
    expect(needEvent(1, 1, 0xffff)).toBe(false);
  });

  it('2.7.7.2: without EVENT_IDX, "the device ... MUST NOT send a notification" if avail flags has NO_INTERRUPT (SHOULD NOT)', () => {
    const { mock, device, data } = setup();
    expect(device.needsNotification()).toBe(false); // nothing pushed
    mock.writeDescriptor(0, { address: data, length: 8 });
    mock.writeDescriptor(1, { address: data, length: 8 });
    mock.publish(0);
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(true);
    expect(device.needsNotification()).toBe(false);
    mock.availFlags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    mock.publish(1);
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(false);
  });

  it('2.7.10: with EVENT_IDX, notifies only when used idx passes used_event', () => {
    const { mock, device, data } = setup(8, { eventIdx: true });
    for (let i = 0; i < 4; i++) mock.writeDescriptor(i, { address: data, length: 8 });
    mock.publish(0, 1, 2, 3);
    mock.usedEvent = 2; // interrupt when the used entry with index 2 is written
    device.pushUsed(device.pop()!.head, 0);
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(false); // used idx 2: entries 0, 1
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(true); // entry 2 written
    device.pushUsed(device.pop()!.head, 0);
    expect(device.needsNotification()).toBe(false);
  });

  it('2.7.10: EVENT_IDX arithmetic wraps at 2^16', () => {
    const mock = new MockSplitQueue({ size: 4 });
    const data = mock.alloc(8);
    for (let i = 0; i < 4; i++) mock.writeDescriptor(i, { address: data, length: 8 });
    const state = { ...mock.createDevice({ eventIdx: true }).saveState(), nextAvail: 0xfffe, nextUsed: 0xfffe };
    mock.availIdx = 0xfffe;
    const device = SplitDeviceQueue.restore(state, { memory: mock.memory });
    mock.publish(0, 1, 2, 3);
    expect(mock.availIdx).toBe(2);
    mock.usedEvent = 0;
    device.pushUsed(device.pop()!.head, 0); // entry 0xfffe
    device.pushUsed(device.pop()!.head, 0); // entry 0xffff
    expect(device.needsNotification()).toBe(false);
    device.pushUsed(device.pop()!.head, 0); // entry 0
    expect(device.needsNotification()).toBe(true);
    expect(mock.availEvent).toBe(1);
  });

  it('2.7.10: disable/enableNotification set used flags, and enable reports buffers that raced in', () => {
    const { mock, device, data } = setup();
    device.disableNotification();
    expect(mock.usedFlags).toBe(VIRTQ_USED_F_NO_NOTIFY);
    expect(device.enableNotification()).toBe(false);
    expect(mock.usedFlags).toBe(0);
    device.disableNotification();
    mock.writeDescriptor(0, { address: data, length: 8 });
    mock.publish(0); // the driver adds while the device polls
    expect(device.enableNotification()).toBe(true); // must poll again, not sleep
    expect(device.pop()?.head).toBe(0);
  });

  it('2.7.10: with EVENT_IDX, enableNotification publishes avail_event = next avail, and pops keep it moving', () => {
    const { mock, device, data } = setup(8, { eventIdx: true });
    for (let i = 0; i < 3; i++) mock.writeDescriptor(i, { address: data, length: 8 });
    mock.publish(0, 1);
    device.pop();
    expect(mock.availEvent).toBe(1);
    device.disableNotification();
    device.pop();
    expect(mock.availEvent).toBe(1); // frozen while disabled
    expect(mock.usedFlags).toBe(0); // flags untouched with EVENT_IDX
    expect(device.enableNotification()).toBe(false);
    expect(mock.availEvent).toBe(2);
    mock.publish(2);
    expect(device.enableNotification()).toBe(true);
  });
});

describe('SplitDeviceQueue: state and reset', () => {
  it('saveState/restore round-trips the indices and the in-flight heads', () => {
    const { mock, device, data } = setup(8, { eventIdx: true });
    for (let i = 0; i < 3; i++) mock.writeDescriptor(i, { address: data, length: 8, flags: 2 });
    mock.publish(0, 1, 2);
    device.pop();
    device.pop();
    device.pushUsed(0, 4);
    const state = device.saveState();
    expect(state).toMatchObject({ version: 1, layout: 'split', nextAvail: 2, nextUsed: 1, inFlight: [1], broken: false });
    const restored = SplitDeviceQueue.restore(JSON.parse(JSON.stringify(state)), { memory: mock.memory });
    expect(restored.saveState()).toEqual(state);
    expect(restored.pop()?.head).toBe(2);
    restored.pushUsed(1, 8);
    expect(restored.inFlight).toBe(1);
  });

  it('reset() forgets every index and the broken mark', () => {
    const { mock, device } = setup();
    mock.availIdx = 100;
    expect(() => device.pop()).toThrow(expect.objectContaining({ code: 'AVAIL_INDEX_JUMP', fatal: true }));
    expect(() => device.pushUsed(0, 0)).toThrow(expect.objectContaining({ code: 'QUEUE_BROKEN' }));
    expect(device.saveState().broken).toBe(true);
    device.reset();
    mock.availIdx = 0;
    expect(device.broken).toBe(false);
    expect(device.pop()).toBeNull();
  });
});
