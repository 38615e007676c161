import { GuestMemory } from '@virtio-ts/memory';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_USED, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { RingError, type RingErrorCode } from '../errors.js';
import { PackedRingBuilder, type RawPackedDescriptor } from '../testing/packed-ring-builder.js';
import type { QueueFeatures } from '../types.js';
import { MAX_INDIRECT_DESCRIPTORS } from './descriptor-chain.js';
import { PackedDeviceQueue } from './device-queue.js';
import { packedQueueLayout } from './layout.js';

// The hostile-driver suite (HOSTILE-INPUTS.md H2–H6, H10, H13, H15): packed rings built by hand
// in guest memory, every validation error of §2.8.17–§2.8.19 and what the device does about it.

const RAM = 1 << 20;
const HIGH = 2 ** 32; // a second region after a hole
const HIGH_SIZE = 1 << 16;
const DATA = 0x40000;

function hostile(size: number, features: Partial<QueueFeatures> = {}) {
  const memory = GuestMemory.create([
    { guestAddress: 0, size: RAM },
    { guestAddress: HIGH, size: HIGH_SIZE },
  ]);
  const layout = packedQueueLayout(size, 0x1000);
  const device = new PackedDeviceQueue(layout, { memory, features, index: 3 });
  const builder = new PackedRingBuilder(memory, layout);
  return { memory, layout, device, builder };
}

function popError(device: PackedDeviceQueue): RingError {
  try {
    device.pop();
  } catch (error) {
    if (RingError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('pop() did not throw');
}

/** A chain error: consumed, `context.head` is the id, and the device completes it with length 0. */
function expectChainError(device: PackedDeviceQueue, code: RingErrorCode, id: number): void {
  const error = popError(device);
  expect(error.code).toBe(code);
  expect(error.fatal).toBe(false);
  expect(error.context.head).toBe(id);
  expect(error.context.queue).toBe(3);
  expect(device.broken).toBe(false);
  expect(() => device.pushUsed(id, 1)).toThrow(expect.objectContaining({ code: 'INVALID_USED' }));
  device.pushUsed(id, 0);
  expect(device.inFlightCount).toBe(0);
}

function expectFatal(device: PackedDeviceQueue, code: RingErrorCode): void {
  const error = popError(device);
  expect(error.code).toBe(code);
  expect(error.fatal).toBe(true);
  expect(device.broken).toBe(true);
  expect(popError(device).code).toBe('QUEUE_BROKEN');
}

const ok: RawPackedDescriptor = { address: DATA, length: 64, id: 0 };

describe('packed device side: hostile driver', () => {
  it('2.8.6: rejects a buffer id >= queue size (fatal: no used descriptor can name it)', () => {
    const { device, builder } = hostile(8);
    builder.publish([{ address: DATA, length: 8, id: 8 }]);
    expectFatal(device, 'DESCRIPTOR_INDEX_OUT_OF_RANGE');
  });

  it('2.8.17: "A driver MUST NOT create a descriptor list longer than the Queue Size" (fatal)', () => {
    const { device, builder } = hostile(4);
    builder.publish(Array.from({ length: 4 }, () => ({ address: DATA, length: 8, flags: VIRTQ_DESC_F_NEXT })));
    expectFatal(device, 'CHAIN_TOO_LONG');
  });

  it('2.8.17: a list of exactly the queue size is fine, across the end of the ring (size 5)', () => {
    const { device, builder } = hostile(5);
    builder.publish([{ ...ok, id: 1 }]);
    expect(device.pop()!.head).toBe(1);
    device.pushUsed(1, 0);
    builder.publish(Array.from({ length: 5 }, (_, i) => ({ address: DATA + i * 8, length: 8, id: 2, flags: i < 4 ? VIRTQ_DESC_F_NEXT : 0 })));
    const chain = device.pop()!;
    expect(chain.descriptorCount).toBe(5);
    expect(chain.readable.map((s) => s.address)).toEqual([0, 1, 2, 3, 4].map((i) => DATA + i * 8));
  });

  it('2.8.7: rejects an indirect table of length 0 or not a multiple of 16 (chain error)', () => {
    const { device, builder } = hostile(4, { indirect: true });
    builder.publish([{ address: DATA, length: 0, id: 1, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'INDIRECT_TABLE_INVALID_LENGTH', 1);
    builder.publish([{ address: DATA, length: 24, id: 2, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'INDIRECT_TABLE_INVALID_LENGTH', 2);
  });

  it('2.8.19: rejects VIRTQ_DESC_F_INDIRECT inside an indirect table, and a table pointing at itself', () => {
    const { device, builder } = hostile(4, { indirect: true });
    builder.writeTable(DATA, [ok, { address: DATA + 0x100, length: 32, flags: VIRTQ_DESC_F_INDIRECT }]);
    builder.publish([{ address: DATA, length: 32, id: 0, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'NESTED_INDIRECT', 0);
    builder.writeTable(0x8000, [{ address: 0x8000, length: 16, flags: VIRTQ_DESC_F_INDIRECT }]);
    builder.publish([{ address: 0x8000, length: 16, id: 0, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'NESTED_INDIRECT', 0);
  });

  it('2.8.19: "MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT" nor put INDIRECT in a NEXT-linked list', () => {
    const { device, builder } = hostile(4, { indirect: true });
    builder.writeTable(DATA, [ok]);
    builder.publish([
      { address: DATA, length: 16, id: 1, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT },
      { address: DATA, length: 8, id: 1 },
    ]);
    expectChainError(device, 'INDIRECT_WITH_NEXT', 1);
    builder.publish([
      { address: DATA, length: 8, id: 2, flags: VIRTQ_DESC_F_NEXT },
      { address: DATA, length: 16, id: 2, flags: VIRTQ_DESC_F_INDIRECT },
    ]);
    expectChainError(device, 'INDIRECT_WITH_NEXT', 2);
  });

  it('2.8.19: "MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the VIRTIO_F_INDIRECT_DESC feature was negotiated"', () => {
    const { device, builder } = hostile(4);
    builder.writeTable(DATA, [ok]);
    builder.publish([{ address: DATA, length: 16, id: 3, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'INDIRECT_NOT_NEGOTIATED', 3);
  });

  it('2.8.17: "MUST place any device-writable descriptor elements after any device-readable" (ring and table)', () => {
    const { device, builder } = hostile(4, { indirect: true });
    builder.publish([
      { address: DATA, length: 8, id: 0, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT },
      { address: DATA, length: 8, id: 0 },
    ]);
    expectChainError(device, 'READABLE_AFTER_WRITABLE', 0);
    builder.writeTable(0x8000, [{ address: DATA, length: 8, flags: VIRTQ_DESC_F_WRITE }, { address: DATA, length: 8 }]);
    builder.publish([{ address: 0x8000, length: 32, id: 1, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'READABLE_AFTER_WRITABLE', 1);
  });

  it('H4: rejects len 0xFFFFFFFF, addr 2^64-8, an address in a hole and one past the end of RAM', () => {
    const { device, builder } = hostile(8, { indirect: true });
    const bad: RawPackedDescriptor[] = [
      { address: DATA, length: 0xffffffff, id: 0 },
      { address: 2n ** 64n - 8n, length: 8, id: 1 },
      { address: 2 ** 31, length: 8, id: 2 },
      { address: RAM, length: 1, id: 3 },
      { address: RAM - 4, length: 8, id: 4 },
      { address: HIGH + HIGH_SIZE - 1, length: 2, id: 5 },
    ];
    for (const d of bad) {
      builder.publish([d]);
      expectChainError(device, 'ADDRESS_OUT_OF_RANGE', d.id!);
    }
    builder.publish([{ address: 2 ** 40, length: 16, id: 6, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'ADDRESS_OUT_OF_RANGE', 6);
    builder.writeTable(DATA, [{ address: RAM - 1, length: 2 }]);
    builder.publish([{ address: DATA, length: 16, id: 7, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'ADDRESS_OUT_OF_RANGE', 7);
    // The last byte of each region is fine.
    builder.publish([{ address: HIGH + HIGH_SIZE - 1, length: 1, id: 0, flags: VIRTQ_DESC_F_NEXT }, { address: RAM - 1, length: 1, id: 0 }]);
    expect(device.pop()!.readableLength).toBe(2);
  });

  it('H6: rejects a chain whose lengths sum past 2^32 - 1, in the ring and in a 32768-entry table', () => {
    const size = 32768;
    const { device, builder } = hostile(size, { indirect: true });
    // 32768 * 131073 > 2^32: every descriptor names the same 128 KiB + 1 of RAM.
    const length = 131073;
    builder.publish(Array.from({ length: size }, (_, i) => ({ address: 0x80000, length, id: 9, flags: i < size - 1 ? VIRTQ_DESC_F_NEXT : 0 })));
    expectChainError(device, 'TOTAL_LENGTH_OVERFLOW', 9);
    builder.writeTable(0x80000, Array.from({ length: MAX_INDIRECT_DESCRIPTORS }, () => ({ address: 0x80000, length })));
    builder.publish([{ address: 0x80000, length: MAX_INDIRECT_DESCRIPTORS * 16, id: 10, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'TOTAL_LENGTH_OVERFLOW', 10);
    builder.publish([{ address: 0x80000, length: (MAX_INDIRECT_DESCRIPTORS + 1) * 16, id: 11, flags: VIRTQ_DESC_F_INDIRECT }]);
    expectChainError(device, 'CHAIN_TOO_LONG', 11);
  });

  it('reads an indirect table and buffers that span two adjacent regions (no hole between them)', () => {
    const memory = GuestMemory.create([
      { guestAddress: 0, size: 0x10000 },
      { guestAddress: 0x10000, size: 0x10000 },
    ]);
    const layout = packedQueueLayout(4, 0x1000);
    const device = new PackedDeviceQueue(layout, { memory, features: { indirect: true } });
    const builder = new PackedRingBuilder(memory, layout);
    builder.writeTable(0xfff0, [{ address: 0xff00, length: 0x200 }, { address: 0x8000, length: 4, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT }]);
    builder.publish([{ address: 0xfff0, length: 32, id: 1, flags: VIRTQ_DESC_F_INDIRECT }]);
    const chain = device.pop()!;
    expect(chain.readable).toEqual([{ address: 0xff00, length: 0x200 }]);
    expect(chain.writable).toEqual([{ address: 0x8000, length: 4 }]);
    device.pushUsed(1, 4);
  });

  it('H10: a buffer id made available again while in flight is HEAD_IN_FLIGHT (fatal)', () => {
    const { device, builder } = hostile(8);
    builder.publish([{ ...ok, id: 0 }]);
    builder.publish([{ ...ok, id: 0 }]);
    expect(device.pop()!.head).toBe(0);
    expectFatal(device, 'HEAD_IN_FLIGHT');
  });

  it('H2: the same id published a thousand times stops at the second; slots past the ring are AVAIL_INDEX_JUMP', () => {
    const { device, builder } = hostile(1024);
    for (let i = 0; i < 1000; i++) builder.publish([{ ...ok, id: 5 }]);
    expect(device.pop()!.head).toBe(5);
    expectFatal(device, 'HEAD_IN_FLIGHT');

    // Two 2-slot buffers fill a ring of 4. The driver then re-publishes slot 0 in the next lap
    // although the device has used nothing (§2.8.16: MUST NOT), with a fresh id.
    const second = hostile(4);
    for (let id = 0; id < 2; id++) second.builder.publish([{ ...ok, id, flags: VIRTQ_DESC_F_NEXT }, { ...ok, id }]);
    expect(second.device.pop()!.head).toBe(0);
    expect(second.device.pop()!.head).toBe(1);
    second.builder.publish([{ ...ok, id: 2 }]);
    expectFatal(second.device, 'AVAIL_INDEX_JUMP');
  });

  it('H3: zero-length descriptors are returned as zero-length segments, never looped on', () => {
    const { device, builder } = hostile(4, { indirect: true });
    builder.publish([
      { address: DATA, length: 0, id: 1, flags: VIRTQ_DESC_F_NEXT },
      { address: DATA, length: 0, id: 1, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE },
      { address: DATA, length: 0, id: 1, flags: VIRTQ_DESC_F_WRITE },
    ]);
    const chain = device.pop()!;
    expect(chain.readable).toEqual([{ address: DATA, length: 0 }]);
    expect(chain.writable).toHaveLength(2);
    expect(chain.writableLength).toBe(0);
    device.pushUsed(1, 0);
  });

  it('2.8.17: a NEXT into a slot the driver has not made available is "no buffer yet": wait, do not fail', () => {
    const { device, builder } = hostile(4);
    builder.write(1, { address: DATA, length: 8, id: 2 }, true);
    builder.write(1, { address: DATA, length: 8, id: 2, flags: VIRTQ_DESC_F_USED | VIRTQ_DESC_F_AVAIL, raw: true }); // not available in lap 1
    builder.write(0, { address: DATA, length: 8, id: 2, flags: VIRTQ_DESC_F_NEXT });
    expect(device.hasAvailable()).toBe(false);
    expect(device.pop()).toBeNull();
    expect(device.enableNotification()).toBe(false); // consistent: nothing to poll, safe to sleep
    builder.write(1, { address: DATA + 8, length: 8, id: 2 });
    expect(device.hasAvailable()).toBe(true);
    expect(device.pop()).toMatchObject({ head: 2, descriptorCount: 2 });
  });

  it('a chain error consumes exactly its slots: the next buffer is read from the right place', () => {
    const { device, builder } = hostile(8);
    builder.publish([
      { address: DATA, length: 8, id: 4, flags: VIRTQ_DESC_F_NEXT },
      { address: RAM * 2, length: 8, id: 4, flags: VIRTQ_DESC_F_NEXT },
      { address: DATA, length: 8, id: 4 },
    ]);
    builder.publish([{ ...ok, id: 6 }]);
    expectChainError(device, 'ADDRESS_OUT_OF_RANGE', 4);
    expect(device.pop()!.head).toBe(6);
    expect(builder.read(0)).toMatchObject({ id: 4, length: 0, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED });
  });

  it('H13: 100,000 malformed chains, each completed with length 0: state stays bounded and a valid chain still completes', () => {
    const { device, builder } = hostile(16, { indirect: true });
    const heapBefore = globalThis.process?.memoryUsage().heapUsed;
    // Stack capture dominates the cost of 100,000 errors under the test runner; the loop is about the ring.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    const kinds: RawPackedDescriptor[] = [
      { address: RAM, length: 8, flags: 0 },
      { address: DATA, length: 0, flags: VIRTQ_DESC_F_INDIRECT },
      { address: DATA, length: 24, flags: VIRTQ_DESC_F_INDIRECT },
      { address: 2n ** 64n - 8n, length: 8, flags: VIRTQ_DESC_F_WRITE },
    ];
    const prepared = kinds.flatMap((kind) => Array.from({ length: 16 }, (_, id) => [{ ...kind, id }]));
    for (let i = 0; i < 100_000; i++) {
      builder.publish(prepared[(i % kinds.length) * 16 + (i % 16)]!);
      try {
        device.pop();
        throw new Error('malformed chain accepted');
      } catch (error) {
        if (!RingError.isInstance(error) || error.fatal) throw error;
        device.pushUsed(error.context.head!, 0);
      }
      if (device.inFlightCount !== 0) throw new Error('a malformed chain leaked');
    }
    Error.stackTraceLimit = stackTraceLimit;
    const heapAfter = globalThis.process?.memoryUsage().heapUsed;
    if (heapBefore !== undefined && heapAfter !== undefined) expect(heapAfter - heapBefore).toBeLessThan(64 << 20);
    expect(device.saveState().inFlight).toEqual([]);
    builder.publish([{ ...ok, id: 3 }]);
    const chain = device.pop()!;
    expect(chain.head).toBe(3);
    device.pushUsed(3, 0);
    expect(device.broken).toBe(false);
  });

  it('H15: fuzzed descriptor rings: every segment popped is inside guest memory with the exact length; errors are RingErrors', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.record({ eventIdx: fc.boolean(), indirect: fc.boolean(), inOrder: fc.constant(false) }),
        fc.uint8Array({ minLength: 64 * 16, maxLength: 64 * 16 }),
        fc.uint8Array({ minLength: 256, maxLength: 256 }),
        (size, features, ringBytes, tableBytes) => {
          const { device, memory, layout } = hostile(size, features);
          // Random descriptors, but steer addresses into or near RAM so that valid ones occur.
          memory.write(layout.descRing, ringBytes.subarray(0, size * 16));
          memory.write(DATA, tableBytes);
          for (let slot = 0; slot < size; slot++) {
            const at = layout.descRing + slot * 16;
            if (ringBytes[slot * 16 + 7]! & 1) memory.writeU32(at + 4, 0); // address below 4 GiB
            if (ringBytes[slot * 16 + 11]! & 1) memory.writeU32(at + 8, memory.readU32(at + 8) & 0xffff); // short length
            if (ringBytes[slot * 16 + 13]! & 1) memory.writeU16(at + 12, memory.readU16(at + 12) % size); // id in range
            if (ringBytes[slot * 16 + 15]! & 1) memory.writeU32(at, DATA + (memory.readU32(at) & 0xff) * 16); // into the table area
          }
          for (let i = 0; i < 4; i++) memory.writeU32(DATA + i * 16 + 4, 0);
          for (let step = 0; step < 2 * size + 2; step++) {
            let chain;
            try {
              chain = device.pop();
            } catch (error) {
              expect(RingError.isInstance(error)).toBe(true);
              const e = error as RingError;
              if (e.fatal) return;
              device.pushUsed(e.context.head!, 0);
              continue;
            }
            if (chain === null) return;
            let readable = 0;
            for (const s of chain.readable) {
              expect(memory.isMapped(s.address, s.length)).toBe(true);
              readable += s.length;
            }
            let writable = 0;
            for (const s of chain.writable) {
              expect(memory.isMapped(s.address, s.length)).toBe(true);
              writable += s.length;
            }
            expect(readable).toBe(chain.readableLength);
            expect(writable).toBe(chain.writableLength);
            expect(readable + writable).toBeLessThanOrEqual(0xffffffff);
            device.pushUsed(chain.head, chain.writableLength);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
