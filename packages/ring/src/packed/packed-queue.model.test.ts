import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingError } from '../errors.js';
import { createPackedQueuePair } from '../testing/packed-queue-pair.js';
import type { DescriptorChain, QueueFeatures, Segment } from '../types.js';

// Model-based test of the packed ring through its public API, driver and device together:
// random adds, pops, pushes (single, batched), kicks, sleeps and wake-ups, checked against a
// model. Every buffer must come back exactly once with the right length and contents, the
// free count must match the slots in flight, and no notification may be lost in either
// direction (a sleeping side with work pending and no notification is a failure).

const SEGMENT_BYTES = 32;
const MAX_SEGMENTS = 4;
const SLOT_BYTES = SEGMENT_BYTES * MAX_SEGMENTS;
const MAX_INDIRECT = 3;

const enum Op {
  Add,
  Kick,
  Pop,
  Push,
  PushBatch,
  DeviceSleep,
  GetUsed,
  DriverSleep,
}
const OP_COUNT = 8;

interface Pending {
  readonly token: number;
  readonly dataSlot: number;
  readonly readable: number;
  readonly writable: number;
  readonly slots: number;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function same(actual: unknown, expected: unknown): void {
  if (actual !== expected) throw new Error(`expected ${String(expected)}, got ${String(actual)}`);
}

function byteOf(token: number, segment: number, i: number): number {
  return (token * 31 + segment * 7 + i) & 0xff;
}

/** Runs `ops` operations; `next()` gives each one as (kind, argument). Returns counters for the caller. */
function runModel(size: number, features: QueueFeatures, ops: number, next: () => [number, number]): { completed: number; wraps: number } {
  const pair = createPackedQueuePair<number>({ size, features, maxIndirect: MAX_INDIRECT, dataBytes: size * SLOT_BYTES });
  const { driver, device, memory, dataAddress } = pair;
  const freeData: number[] = [];
  for (let i = size - 1; i >= 0; i--) freeData.push(i);
  const pending = new Map<number, Pending>(); // added, not yet returned by getUsed
  const byDataSlot = new Map<number, Pending>();
  const held: DescriptorChain[] = []; // popped by the device, in pop order
  const expectedLength = new Map<number, number>(); // token -> length the device wrote
  let slotsInFlight = 0;
  let nextToken = 0;
  let completed = 0;
  let deviceSleeping = false;
  let driverSleeping = false;
  let slotsAdded = 0;

  const writableSegment = (p: Pending, k: number): Segment => ({ address: dataAddress + p.dataSlot * SLOT_BYTES + (p.readable + k) * SEGMENT_BYTES, length: SEGMENT_BYTES });

  const add = (arg: number): void => {
    let readable = 1 + (arg % 3); // 1..3
    let writable = (arg >>> 2) % (MAX_SEGMENTS - readable + 1); // 0..MAX-readable
    const slotsFor = (r: number, w: number): number => (features.indirect && r + w > 1 && r + w <= MAX_INDIRECT ? 1 : r + w);
    while (slotsFor(readable, writable) > size) {
      if (writable > 0) writable--;
      else readable--;
    }
    const n = readable + writable;
    const needed = slotsFor(readable, writable);
    if (needed > size - slotsInFlight || freeData.length === 0) {
      same(freeData.length === 0 || driver.freeCount < needed, true);
      if (driver.freeCount < needed) {
        const segments = Array.from({ length: n }, () => ({ address: dataAddress, length: 1 }));
        let code = 'none';
        try {
          driver.add(segments, [], 0);
        } catch (error) {
          code = RingError.isInstance(error) ? error.code : 'not a RingError';
        }
        same(code, 'QUEUE_FULL');
      }
      return;
    }
    const dataSlot = freeData.pop()!;
    const token = nextToken++;
    const base = dataAddress + dataSlot * SLOT_BYTES;
    const r: Segment[] = [];
    for (let s = 0; s < readable; s++) {
      const address = base + s * SEGMENT_BYTES;
      const bytes = memory.slice(address, SEGMENT_BYTES);
      for (let i = 0; i < SEGMENT_BYTES; i++) bytes[i] = byteOf(token, s, i);
      r.push({ address, length: SEGMENT_BYTES });
    }
    const p: Pending = { token, dataSlot, readable, writable, slots: needed };
    const w: Segment[] = [];
    for (let k = 0; k < writable; k++) {
      const seg = writableSegment(p, k);
      memory.fill(seg.address, seg.length, 0);
      w.push(seg);
    }
    driver.add(r, w, token);
    pending.set(token, p);
    byDataSlot.set(dataSlot, p);
    slotsInFlight += needed;
    slotsAdded += needed;
    same(driver.freeCount, size - slotsInFlight);
  };

  const checkChain = (chain: DescriptorChain): void => {
    // Identify the buffer by its first readable segment's data slot, then check the bytes.
    const address = chain.readable[0]!.address;
    const dataSlot = Math.floor((address - dataAddress) / SLOT_BYTES);
    const p = byDataSlot.get(dataSlot);
    check(p !== undefined, 'chain of an unknown buffer');
    same(chain.readable.length, p.readable);
    same(chain.writable.length, p.writable);
    same(chain.descriptorCount, p.slots);
    for (let s = 0; s < p.readable; s++) {
      const seg = chain.readable[s]!;
      same(seg.length, SEGMENT_BYTES);
      same(memory.readU8(seg.address + 5), byteOf(p.token, s, 5));
      same(memory.readU8(seg.address + SEGMENT_BYTES - 1), byteOf(p.token, s, SEGMENT_BYTES - 1));
    }
  };

  const tokenOfChain = (chain: DescriptorChain): number => {
    const dataSlot = Math.floor((chain.readable[0]!.address - dataAddress) / SLOT_BYTES);
    return byDataSlot.get(dataSlot)!.token;
  };

  /** The device fills `length` bytes of the writable space with a pattern and remembers it. */
  const deviceWrite = (chain: DescriptorChain, length: number): void => {
    const token = tokenOfChain(chain);
    let left = length;
    for (const seg of chain.writable) {
      const n = Math.min(left, seg.length);
      const bytes = memory.slice(seg.address, n);
      for (let i = 0; i < n; i++) bytes[i] = (token + i + 1) & 0xff;
      left -= n;
    }
    expectedLength.set(token, length);
  };

  const interrupt = (): void => {
    if (device.needsNotification()) driverSleeping = false;
    else if (driverSleeping && driver.hasUsed()) throw new Error('lost used-buffer notification');
  };

  const pop = (): void => {
    deviceSleeping = false;
    device.disableNotification();
    const chain = device.pop();
    if (chain === null) return;
    checkChain(chain);
    held.push(chain);
  };

  const push = (arg: number): void => {
    if (held.length === 0) return;
    const index = features.inOrder ? 0 : arg % held.length;
    const chain = held.splice(index, 1)[0]!;
    const length = chain.writableLength === 0 ? 0 : arg % (chain.writableLength + 1);
    deviceWrite(chain, length);
    device.pushUsed(chain.head, length);
    interrupt();
  };

  const pushBatch = (arg: number): void => {
    const count = Math.min(held.length, 1 + (arg % 4));
    if (count === 0) return;
    const batch = features.inOrder ? held.splice(0, count) : held.splice(arg % (held.length - count + 1), count);
    const elements = batch.map((chain, i) => {
      // Whole writes let IN_ORDER skip used descriptors; a short one forces a descriptor.
      const length = i % 2 === 0 || chain.writableLength === 0 ? chain.writableLength : (arg >>> 3) % (chain.writableLength + 1);
      deviceWrite(chain, length);
      return { head: chain.head, length };
    });
    device.pushUsedBatch(elements);
    interrupt();
  };

  const getUsed = (): void => {
    driverSleeping = false;
    driver.disableCallback();
    const used = driver.getUsed();
    if (used === null) return;
    const p = pending.get(used.token);
    check(p !== undefined, `token ${used.token} returned twice or never added`);
    pending.delete(used.token);
    byDataSlot.delete(p.dataSlot);
    slotsInFlight -= p.slots;
    freeData.push(p.dataSlot);
    same(used.length, expectedLength.get(used.token));
    expectedLength.delete(used.token);
    const ws = Array.from({ length: p.writable }, (_, k) => writableSegment(p, k));
    let left = used.length;
    for (const seg of ws) {
      const n = Math.min(left, seg.length);
      if (n > 0) {
        same(memory.readU8(seg.address), (used.token + 1) & 0xff);
        same(memory.readU8(seg.address + n - 1), (used.token + n) & 0xff);
      }
      if (n < seg.length) same(memory.readU8(seg.address + n), 0);
      left -= n;
    }
    completed++;
  };

  for (let i = 0; i < ops; i++) {
    const [kind, arg] = next();
    switch (kind as Op) {
      case Op.Add:
        add(arg);
        break;
      case Op.Kick:
        if (driver.kickPrepare()) deviceSleeping = false;
        else if (deviceSleeping && device.hasAvailable()) throw new Error('lost available-buffer notification');
        break;
      case Op.Pop:
        pop();
        break;
      case Op.Push:
        push(arg);
        break;
      case Op.PushBatch:
        pushBatch(arg);
        break;
      case Op.DeviceSleep:
        if (!device.enableNotification()) deviceSleeping = true;
        break;
      case Op.GetUsed:
        getUsed();
        break;
      case Op.DriverSleep:
        if (driver.enableCallback()) driverSleeping = true;
        break;
    }
  }
  // Drain: every buffer comes back exactly once.
  for (let guard = 0; pending.size > 0; guard++) {
    check(guard < 10 * size + 100, 'drain does not finish');
    pop();
    while (held.length > 0) push(0x7fffffff);
    getUsed();
  }
  check(driver.getUsed() === null, 'extra used buffer');
  check(device.pop() === null, 'extra available buffer');
  same(driver.freeCount, size);
  same(device.inFlightCount, 0);
  return { completed, wraps: Math.floor(slotsAdded / size) };
}

const featuresArb = fc.record({ eventIdx: fc.boolean(), indirect: fc.boolean(), inOrder: fc.boolean() });
const sizeArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 32768 }));
const opArb = fc.tuple(fc.integer({ min: 0, max: OP_COUNT - 1 }), fc.nat());

/** A small deterministic PRNG (mulberry32) for the long run, seeded by fast-check. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('packed ring model', () => {
  it('every buffer comes back exactly once with its length and contents; no lost notification (random sizes 1..32768, all feature mixes)', () => {
    fc.assert(
      fc.property(sizeArb, featuresArb, fc.array(opArb, { maxLength: 400 }), (size, features, ops) => {
        let i = 0;
        runModel(size, features, ops.length, () => ops[i++]!);
      }),
      { numRuns: 120 },
    );
  });

  it('wraps the ring many times: 80,000 operations per run on small queues', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 37 }), featuresArb, fc.integer(), (size, features, seed) => {
        const random = prng(seed);
        // Weighted so that adds and completions dominate and the ring keeps moving.
        const weights = [5, 2, 5, 3, 2, 1, 6, 1];
        const total = weights.reduce((a, b) => a + b, 0);
        const { wraps } = runModel(size, features, 80_000, () => {
          let r = random() * total;
          let kind = 0;
          while (r >= weights[kind]!) r -= weights[kind++]!;
          return [kind, Math.floor(random() * 0x7fffffff)];
        });
        expect(wraps).toBeGreaterThan(100);
      }),
      { numRuns: Number(globalThis.process?.env.VIRTIO_TS_LONG_RUNS ?? 2) },
    );
  });

  it('RingError stays a RingError (no stray exceptions from the model)', () => {
    expect(RingError.isInstance(new RingError('QUEUE_FULL', 'x'))).toBe(true);
  });
});
