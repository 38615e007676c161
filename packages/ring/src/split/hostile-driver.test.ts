// A hostile driver: hand-built rings for every chain validation error, and the rows of
// HOSTILE-INPUTS.md that apply to the ring (H1–H6, H10, H13, H15, H16).
import { GuestMemory } from '@virtio-ts/memory';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { RingError, type RingErrorCode } from '../errors.js';
import { MockSplitQueue } from '../testing/index.js';
import { SplitDeviceQueue } from './device-queue.js';

const NEXT = VIRTQ_DESC_F_NEXT;
const WRITE = VIRTQ_DESC_F_WRITE;
const INDIRECT = VIRTQ_DESC_F_INDIRECT;

function popError(device: SplitDeviceQueue): RingError {
  try {
    device.pop();
  } catch (error) {
    if (RingError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('pop() did not throw');
}

/** Expects a non-fatal chain error: the head is reported, and the queue keeps serving. */
function expectChainError(mock: MockSplitQueue, device: SplitDeviceQueue, code: RingErrorCode, head: number): void {
  const error = popError(device);
  expect(error.code).toBe(code);
  expect(error.fatal).toBe(false);
  expect(error.context.head).toBe(head);
  expect(device.broken).toBe(false);
  device.pushUsed(head, 0);
  expect(mock.usedElement((mock.usedIdx - 1) & 0xffff)).toEqual({ id: head, length: 0 });
  // A valid chain after the bad one is served.
  const data = mock.alloc(64);
  const good = mock.writeChain((head + 1) % mock.size, [{ address: data, length: 64 }]);
  mock.publish(good);
  const chain = device.pop();
  expect(chain?.head).toBe(good);
  expect(chain?.readable).toEqual([{ address: data, length: 64 }]);
}

function expectFatal(device: SplitDeviceQueue, code: RingErrorCode): void {
  const error = popError(device);
  expect(error.code).toBe(code);
  expect(error.fatal).toBe(true);
  expect(device.broken).toBe(true);
  expect(popError(device).code).toBe('QUEUE_BROKEN');
  expect(device.hasAvailable()).toBe(false);
}

describe('split device queue: chain validation (hostile driver)', () => {
  it('2.7.5.2: rejects a next index outside the descriptor table (DESCRIPTOR_INDEX_OUT_OF_RANGE)', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const a = mock.alloc(16);
    mock.writeDescriptor(0, { address: a, length: 16, flags: NEXT, next: 8 });
    mock.publish(0);
    expectChainError(mock, mock.createDevice(), 'DESCRIPTOR_INDEX_OUT_OF_RANGE', 0);
  });

  it('H1: indices compare unsigned: next 0xFFFF is out of range, not negative', () => {
    const mock = new MockSplitQueue({ size: 8 });
    mock.writeDescriptor(3, { address: mock.alloc(16), length: 16, flags: NEXT, next: 0xffff });
    mock.publish(3);
    expectChainError(mock, mock.createDevice(), 'DESCRIPTOR_INDEX_OUT_OF_RANGE', 3);
  });

  it('H1: a head of 0xFFFF (or = size) in the available ring breaks the queue: it cannot be returned', () => {
    for (const head of [8, 0xffff]) {
      const mock = new MockSplitQueue({ size: 8 });
      mock.publish(head);
      expectFatal(mock.createDevice(), 'DESCRIPTOR_INDEX_OUT_OF_RANGE');
    }
  });

  it('H5: rejects a loop 0→1→0 and a self-loop (DESCRIPTOR_LOOP)', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const a = mock.alloc(16);
    mock.writeDescriptor(0, { address: a, length: 16, flags: NEXT, next: 1 });
    mock.writeDescriptor(1, { address: a, length: 16, flags: NEXT, next: 0 });
    mock.publish(0);
    const device = mock.createDevice();
    expectChainError(mock, device, 'DESCRIPTOR_LOOP', 0);
    mock.writeDescriptor(5, { address: a, length: 16, flags: NEXT, next: 5 });
    mock.publish(5);
    expectChainError(mock, device, 'DESCRIPTOR_LOOP', 5);
  });

  it('H5: a loop through the whole table of the largest queue is caught in bounded time', () => {
    const size = 32768;
    const mock = new MockSplitQueue({ size, memorySize: 4 << 20 });
    const a = mock.alloc(16);
    for (let i = 0; i < size; i++) mock.writeDescriptor(i, { address: a, length: 1, flags: NEXT, next: (i + 1) % size });
    mock.publish(0);
    expectChainError(mock, mock.createDevice(), 'DESCRIPTOR_LOOP', 0);
  });

  it('2.7.5.3.1: rejects an indirect table with more entries than the queue size (CHAIN_TOO_LONG)', () => {
    const mock = new MockSplitQueue({ size: 4 });
    const table = mock.alloc(16 * 5);
    const a = mock.alloc(16);
    mock.writeTable(table, Array.from({ length: 5 }, (_, k) => ({ address: a, length: 1, flags: k < 4 ? NEXT : 0, next: k + 1 })));
    mock.writeDescriptor(0, { address: table, length: 16 * 5, flags: INDIRECT });
    mock.publish(0);
    expectChainError(mock, mock.createDevice({ indirect: true }), 'CHAIN_TOO_LONG', 0);
  });

  it('2.7.5.3.1: rejects direct + indirect segments adding up to more than the queue size (CHAIN_TOO_LONG)', () => {
    const mock = new MockSplitQueue({ size: 4 });
    const table = mock.alloc(16 * 4);
    const a = mock.alloc(16);
    mock.writeTable(table, Array.from({ length: 4 }, (_, k) => ({ address: a, length: 1, flags: k < 3 ? NEXT : 0, next: k + 1 })));
    mock.writeDescriptor(0, { address: a, length: 1, flags: NEXT, next: 1 });
    mock.writeDescriptor(1, { address: table, length: 16 * 4, flags: INDIRECT });
    mock.publish(0);
    expectChainError(mock, mock.createDevice({ indirect: true }), 'CHAIN_TOO_LONG', 0);
  });

  it('H5: rejects an indirect table of length 0 or not a multiple of 16 (INDIRECT_TABLE_INVALID_LENGTH)', () => {
    for (const length of [0, 15, 17, 40]) {
      const mock = new MockSplitQueue({ size: 8 });
      mock.writeDescriptor(0, { address: mock.alloc(64), length, flags: INDIRECT });
      mock.publish(0);
      expectChainError(mock, mock.createDevice({ indirect: true }), 'INDIRECT_TABLE_INVALID_LENGTH', 0);
    }
  });

  it('2.7.5.3.1: "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect descriptor" (NESTED_INDIRECT)', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const table = mock.alloc(32);
    // H5: an indirect table pointing at itself.
    mock.writeTable(table, [{ address: table, length: 32, flags: INDIRECT }]);
    mock.writeDescriptor(0, { address: table, length: 32, flags: INDIRECT });
    mock.publish(0);
    expectChainError(mock, mock.createDevice({ indirect: true }), 'NESTED_INDIRECT', 0);
  });

  it('2.7.5.3.1: "A driver MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT" (INDIRECT_WITH_NEXT)', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const table = mock.alloc(16);
    mock.writeTable(table, [{ address: mock.alloc(8), length: 8 }]);
    mock.writeDescriptor(0, { address: table, length: 16, flags: INDIRECT | NEXT, next: 1 });
    mock.publish(0);
    expectChainError(mock, mock.createDevice({ indirect: true }), 'INDIRECT_WITH_NEXT', 0);
  });

  it('2.7.5.3.1: "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the VIRTIO_F_INDIRECT_DESC feature was negotiated"', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const table = mock.alloc(16);
    mock.writeTable(table, [{ address: mock.alloc(8), length: 8 }]);
    mock.writeDescriptor(0, { address: table, length: 16, flags: INDIRECT });
    mock.publish(0);
    expectChainError(mock, mock.createDevice({ indirect: false }), 'INDIRECT_NOT_NEGOTIATED', 0);
  });

  it('H5: rejects NEXT in an indirect table pointing out of it, and a loop inside it', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const device = mock.createDevice({ indirect: true });
    const a = mock.alloc(8);
    const table = mock.alloc(32);
    mock.writeTable(table, [
      { address: a, length: 8, flags: NEXT, next: 1 },
      { address: a, length: 8, flags: NEXT, next: 2 },
    ]);
    mock.writeDescriptor(0, { address: table, length: 32, flags: INDIRECT });
    mock.publish(0);
    expectChainError(mock, device, 'DESCRIPTOR_INDEX_OUT_OF_RANGE', 0);
    const loop = mock.alloc(32);
    mock.writeTable(loop, [
      { address: a, length: 8, flags: NEXT, next: 1 },
      { address: a, length: 8, flags: NEXT, next: 0 },
    ]);
    mock.writeDescriptor(4, { address: loop, length: 32, flags: INDIRECT });
    mock.publish(4);
    expectChainError(mock, device, 'DESCRIPTOR_LOOP', 4);
  });

  it('2.7.4.2: "The driver MUST place any device-writable descriptor elements after any device-readable descriptor elements"', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const a = mock.alloc(16);
    mock.writeChain(0, [
      { address: a, length: 8, write: true },
      { address: a, length: 8 },
    ]);
    mock.publish(0);
    expectChainError(mock, mock.createDevice(), 'READABLE_AFTER_WRITABLE', 0);
  });

  it('H4: rejects buffers outside guest memory: len 0xFFFFFFFF, addr 2^64-8, a hole, one past the end of RAM', () => {
    const memory = GuestMemory.create([
      { guestAddress: 0, size: 1 << 20 },
      { guestAddress: 4 << 20, size: 1 << 20 },
    ]);
    const mock = new MockSplitQueue({ size: 8, memory });
    const device = mock.createDevice({ indirect: true });
    const cases = [
      { address: 0x1000, length: 0xffff_ffff },
      { address: 2n ** 64n - 8n, length: 8 },
      { address: 2 << 20, length: 16 }, // a hole
      { address: 5 << 20, length: 1 }, // one past the end of RAM
      { address: (1 << 20) - 8, length: 16 }, // runs into the hole
    ];
    for (const [k, c] of cases.entries()) {
      const head = k % 8;
      mock.writeDescriptor(head, { address: c.address, length: c.length });
      mock.publish(head);
      const error = popError(device);
      expect(error.code).toBe('ADDRESS_OUT_OF_RANGE');
      expect(error.fatal).toBe(false);
      device.pushUsed(head, 0);
    }
    // An indirect table in the hole.
    mock.writeDescriptor(7, { address: 2 << 20, length: 32, flags: INDIRECT });
    mock.publish(7);
    expect(popError(device).code).toBe('ADDRESS_OUT_OF_RANGE');
    device.pushUsed(7, 0);
    // A buffer in the second region is fine.
    mock.writeDescriptor(0, { address: 4 << 20, length: 1 << 20, flags: WRITE });
    mock.publish(0);
    expect(device.pop()?.writable).toEqual([{ address: 4 << 20, length: 1 << 20 }]);
  });

  it('H6: 2.7.5.2 "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total" (TOTAL_LENGTH_OVERFLOW)', () => {
    // Segments may overlap, so 4400 descriptors naming the same 960 KiB sum past 2^32.
    const size = 8192;
    const mock = new MockSplitQueue({ size, memorySize: 2 << 20 });
    const a = mock.alloc(960 << 10);
    const segments = Array.from({ length: 4400 }, () => ({ address: a, length: 960 << 10 }));
    mock.writeChain(0, segments);
    mock.publish(0);
    expectChainError(mock, mock.createDevice(), 'TOTAL_LENGTH_OVERFLOW', 0);
  });

  it('H6: a chain of exactly 2^32 - 1 bytes is accepted, and a chain as long as the queue', () => {
    const size = 8192;
    const mock = new MockSplitQueue({ size, memorySize: 2 << 20 });
    const a = mock.alloc(1 << 20);
    // 4095 * 1 MiB + (1 MiB - 1) = 2^32 - 1.
    const segments = Array.from({ length: 4096 }, (_, k) => ({ address: a, length: k < 4095 ? 1 << 20 : (1 << 20) - 1, write: true }));
    mock.writeChain(0, segments);
    mock.publish(0);
    const device = mock.createDevice();
    const chain = device.pop();
    expect(chain?.writableLength).toBe(2 ** 32 - 1);
    expect(chain?.writable).toHaveLength(4096);
    device.pushUsed(0, 0);
    const all = Array.from({ length: size }, () => ({ address: a, length: 1 }));
    mock.writeChain(0, all);
    mock.publish(0);
    expect(device.pop()?.descriptorCount).toBe(size);
  });
});

describe('split device queue: HOSTILE-INPUTS rows', () => {
  it('H2: avail idx jumping by 0x8000 (more than the queue size) breaks the queue (AVAIL_INDEX_JUMP)', () => {
    const mock = new MockSplitQueue({ size: 256 });
    mock.availIdx = 0x8000;
    expectFatal(mock.createDevice(), 'AVAIL_INDEX_JUMP');
  });

  it('H2: avail idx moving by exactly the queue size is accepted', () => {
    const mock = new MockSplitQueue({ size: 4 });
    const a = mock.alloc(8);
    for (let i = 0; i < 4; i++) mock.writeDescriptor(i, { address: a, length: 8 });
    mock.publish(0, 1, 2, 3);
    const device = mock.createDevice();
    for (let i = 0; i < 4; i++) expect(device.pop()?.head).toBe(i);
    expect(device.pop()).toBeNull();
  });

  it('H2/H10: the same head published twice while in flight breaks the queue (HEAD_IN_FLIGHT)', () => {
    const mock = new MockSplitQueue({ size: 8 });
    mock.writeDescriptor(0, { address: mock.alloc(8), length: 8 });
    mock.publish(0, 0);
    const device = mock.createDevice();
    expect(device.pop()?.head).toBe(0);
    const error = popError(device);
    expect(error.code).toBe('HEAD_IN_FLIGHT');
    expect(error.fatal).toBe(true);
    expect(device.broken).toBe(true);
  });

  it('H2: the same head published a thousand times costs one chain, then a fatal error, and nothing grows', () => {
    const mock = new MockSplitQueue({ size: 1024, memorySize: 2 << 20 });
    mock.writeDescriptor(0, { address: mock.alloc(8), length: 8 });
    mock.publish(...Array.from({ length: 1000 }, () => 0));
    const device = mock.createDevice();
    expect(device.pop()?.head).toBe(0);
    expect(popError(device).code).toBe('HEAD_IN_FLIGHT');
    expect(device.inFlight).toBe(1);
    // A reset recovers the queue.
    device.reset();
    expect(device.broken).toBe(false);
    expect(device.inFlight).toBe(0);
  });

  it('H10: a head published again after it was used is fine (with asynchronous completion in between)', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const a = mock.alloc(8);
    mock.writeDescriptor(0, { address: a, length: 8, flags: WRITE });
    mock.publish(0);
    const device = mock.createDevice();
    const first = device.pop()!;
    mock.publish(0); // while in flight: the device must notice on the next pop
    expect(popError(device).code).toBe('HEAD_IN_FLIGHT');
    // On a fresh queue: complete first, then republish.
    const again = new MockSplitQueue({ size: 8 });
    again.writeDescriptor(0, { address: a, length: 8, flags: WRITE });
    again.publish(0);
    const d2 = again.createDevice();
    const c = d2.pop()!;
    d2.pushUsed(c.head, 8);
    again.publish(0);
    expect(d2.pop()?.head).toBe(0);
    expect(first.head).toBe(0);
  });

  it('H3: zero-length header, data and status descriptors are served without looping', () => {
    const mock = new MockSplitQueue({ size: 8 });
    const a = mock.alloc(16);
    mock.writeChain(0, [
      { address: a, length: 0 },
      { address: a, length: 0, write: true },
      { address: a, length: 0, write: true },
    ]);
    mock.publish(0);
    const device = mock.createDevice();
    const chain = device.pop()!;
    expect(chain.readable).toEqual([{ address: a, length: 0 }]);
    expect(chain.writable).toHaveLength(2);
    expect(chain.readableLength + chain.writableLength).toBe(0);
    device.pushUsed(0, 0);
    expect(() => device.pushUsed(0, 0)).toThrow(RingError);
  });

  it('H13: a hundred thousand malformed requests: none leaks a slot, memory stays flat, a valid request still completes', () => {
    const size = 256;
    const mock = new MockSplitQueue({ size });
    const device = mock.createDevice({ indirect: true });
    const a = mock.alloc(64);
    const table = mock.alloc(64);
    mock.writeTable(table, [{ address: a, length: 8, flags: INDIRECT }]);
    const bad = [
      { address: a, length: 8, flags: NEXT, next: 0xffff }, // index out of range
      { address: 2 ** 40, length: 8 }, // outside memory
      { address: table, length: 16, flags: INDIRECT }, // nested indirect
      { address: table, length: 7, flags: INDIRECT }, // bad indirect length
    ];
    // `process` exists under Node only; the browser run checks the count, Node also the heap.
    const proc = (globalThis as { process?: { env: Record<string, string | undefined>; memoryUsage(): { heapUsed: number } } }).process;
    const count = Number(proc?.env.VIRTIO_TS_H13_REQUESTS ?? 100_000);
    const heapBefore = proc?.memoryUsage().heapUsed ?? 0;
    const codes = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const head = i % size;
      mock.writeDescriptor(head, bad[i % bad.length]!);
      mock.publish(head);
      const error = popError(device);
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
      device.pushUsed(error.context.head!, 0);
    }
    expect(device.inFlight).toBe(0);
    expect(mock.usedIdx).toBe(count & 0xffff);
    expect([...codes.keys()].sort()).toEqual(['ADDRESS_OUT_OF_RANGE', 'DESCRIPTOR_INDEX_OUT_OF_RANGE', 'INDIRECT_TABLE_INVALID_LENGTH', 'NESTED_INDIRECT']);
    // Flat: nothing is retained per request (errors are garbage); allow GC slack only.
    if (proc) expect(proc.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 << 20);
    mock.writeChain(5, [{ address: a, length: 8 }, { address: a + 8, length: 8, write: true }]);
    mock.publish(5);
    const chain = device.pop()!;
    device.pushUsed(chain.head, 8);
    expect(mock.usedElement((mock.usedIdx - 1) & 0xffff)).toEqual({ id: 5, length: 8 });
  });

  it('H15: every popped segment has exactly the descriptor length and lies inside guest memory (fuzzed addr, len)', () => {
    const memory = GuestMemory.create([
      { guestAddress: 0, size: 1 << 20 },
      { guestAddress: 3 << 20, size: 1 << 16 },
    ]);
    const mock = new MockSplitQueue({ size: 16, memory });
    const device = mock.createDevice();
    let head = 0;
    fc.assert(
      fc.property(
        fc.oneof(fc.nat({ max: 4 << 20 }), fc.constantFrom(0, (1 << 20) - 1, 3 << 20, (3 << 20) + (1 << 16), 2 ** 53 - 1, 2 ** 53)),
        fc.oneof(fc.nat({ max: 1 << 21 }), fc.constantFrom(0, 1, 0xffff_ffff)),
        fc.boolean(),
        (address, length, write) => {
          mock.writeDescriptor(head, { address, length, flags: write ? WRITE : 0 });
          mock.publish(head);
          try {
            const chain = device.pop()!;
            const segment = write ? chain.writable[0]! : chain.readable[0]!;
            expect(segment).toEqual({ address, length });
            expect(memory.isMapped(address, length)).toBe(true);
            device.pushUsed(chain.head, 0);
          } catch (error) {
            expect(RingError.isInstance(error) && error.code).toBe('ADDRESS_OUT_OF_RANGE');
            expect(memory.isMapped(address, length)).toBe(false);
            device.pushUsed(head, 0);
          }
          head = (head + 1) % 16;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fuzz: random bytes as descriptor table and available ring never crash, hang or escape', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16 * 16 + 40, maxLength: 16 * 16 + 40 }), fc.boolean(), (bytes, indirect) => {
        const mock = new MockSplitQueue({ size: 16, memorySize: 64 << 10 });
        mock.memory.write(mock.layout.descTable, bytes.subarray(0, 256));
        mock.memory.write(mock.layout.availRing, bytes.subarray(256, 256 + 38));
        const device = mock.createDevice({ indirect });
        for (let k = 0; k < 20; k++) {
          try {
            const chain = device.pop();
            if (chain === null) break;
            for (const s of [...chain.readable, ...chain.writable]) expect(mock.memory.isMapped(s.address, s.length)).toBe(true);
            device.pushUsed(chain.head, 0);
          } catch (error) {
            expect(RingError.isInstance(error)).toBe(true);
            const e = error as RingError;
            if (e.fatal) break;
            device.pushUsed(e.context.head!, 0);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('H16: restore of fuzzed queue state either yields a valid queue or throws INVALID_STATE', () => {
    const mock = new MockSplitQueue({ size: 16 });
    const good = mock.createDevice().saveState();
    const anything = fc.oneof(fc.integer(), fc.double(), fc.string(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(fc.integer({ min: -2, max: 40 }), { maxLength: 40 }));
    fc.assert(
      fc.property(
        fc.record({
          version: fc.oneof(fc.constant(1), anything),
          layout: fc.oneof(fc.constant('split'), anything),
          ring: fc.oneof(
            fc.constant(good.ring),
            fc.record({ size: fc.oneof(fc.constantFrom(0, 1, 16, 3, 65536, 32768), anything), descTable: fc.oneof(fc.constant(0), fc.integer({ min: -1, max: 2 ** 21 })), availRing: fc.oneof(fc.constant(good.ring.availRing), fc.integer()), usedRing: fc.oneof(fc.constant(good.ring.usedRing), fc.integer()) }),
            anything,
          ),
          features: fc.oneof(fc.constant(good.features), fc.record({ eventIdx: fc.boolean(), indirect: fc.boolean(), inOrder: fc.oneof(fc.boolean(), anything) }), anything),
          nextAvail: fc.oneof(fc.integer({ min: -1, max: 70000 }), anything),
          nextUsed: fc.oneof(fc.integer({ min: 0, max: 65535 }), anything),
          inFlight: fc.oneof(fc.array(fc.integer({ min: -1, max: 17 }), { maxLength: 20 }), anything, fc.constant(new Array(100_000).fill(0))),
          broken: fc.oneof(fc.boolean(), anything),
        }),
        (state) => {
          try {
            const queue = SplitDeviceQueue.restore(state, { memory: mock.memory });
            const saved = queue.saveState();
            expect(saved.nextAvail).toBe(state.nextAvail);
            expect(saved.inFlight.length).toBeLessThanOrEqual(16);
            expect(SplitDeviceQueue.restore(saved, { memory: mock.memory }).saveState()).toEqual(saved);
          } catch (error) {
            expect(RingError.isInstance(error) && error.code).toBe('INVALID_STATE');
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('H16: restore refuses rings outside guest memory, bad sizes, duplicate or out-of-range in-flight heads', () => {
    const mock = new MockSplitQueue({ size: 16 });
    const good = mock.createDevice().saveState();
    const bad: unknown[] = [
      null,
      { ...good, version: 2 },
      { ...good, ring: { ...good.ring, size: 12 } },
      { ...good, ring: { ...good.ring, usedRing: 2 ** 30 } },
      { ...good, ring: { ...good.ring, descTable: 8 } },
      { ...good, nextAvail: 2, nextUsed: 0, inFlight: [1, 1] },
      { ...good, nextAvail: 1, nextUsed: 0, inFlight: [16] },
      { ...good, nextAvail: 1, nextUsed: 0, inFlight: [] },
      { ...good, nextAvail: 40, nextUsed: 0, inFlight: [] },
      { ...good, inFlight: new Array(17).fill(0) },
    ];
    for (const state of bad) expect(() => SplitDeviceQueue.restore(state, { memory: mock.memory })).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }));
  });
});
