// Model-based tests: random sequences of driver adds, device pops and pushes, kicks,
// notifications and sleeps against a plain model; every buffer comes back exactly once with the
// right length and contents, and no notification is ever lost.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DescriptorChain, QueueFeatures } from '../types.js';
import { createSplitRing, type SplitRing } from '../testing/index.js';

interface Model {
  /** Tokens added and not yet popped by the device, in avail order. */
  readonly available: number[];
  /** Chains the device holds, in pop order, with their token. */
  readonly held: { chain: DescriptorChain; token: number }[];
  /** Tokens used by the device, in used order, with the length the driver must see. */
  readonly used: { token: number; length: number }[];
  readonly returned: Set<number>;
  nextToken: number;
  deviceSleeping: boolean;
  driverSleeping: boolean;
}

interface Real {
  readonly ring: SplitRing<number>;
  readonly features: QueueFeatures;
  readonly slotBytes: number;
  readonly freeSlots: number[];
  readonly slotOf: Map<number, number>;
  readonly segmentsOf: Map<number, { readable: number; writable: number }>;
}

const SEGMENT = 16;

function tokenPattern(token: number, k: number): number {
  return (token * 2654435761 + k) >>> 0;
}

class AddCommand implements fc.Command<Model, Real> {
  constructor(
    readonly readable: number,
    readonly writable: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const { driver, memory, dataAddress } = r.ring;
    const n = this.readable + this.writable;
    const indirect = r.features.indirect && n > 1 && n <= Math.min(r.ring.layout.size, 8);
    const fits = (indirect ? 1 : n) <= driver.freeCount && r.freeSlots.length > 0;
    const token = m.nextToken;
    if (!fits) {
      if (n > r.ring.layout.size && !indirect) expect(() => driver.add(seg(0, this.readable), seg(0, this.writable), token)).toThrow();
      return;
    }
    const slot = r.freeSlots.pop()!;
    const base = dataAddress + slot * r.slotBytes;
    const readable = seg(base, this.readable);
    const writable = seg(base + this.readable * SEGMENT, this.writable);
    readable.forEach((s, k) => memory.writeU32(s.address, tokenPattern(token, k)));
    writable.forEach((s) => memory.writeU32(s.address, 0));
    driver.add(readable, writable, token);
    r.slotOf.set(token, slot);
    r.segmentsOf.set(token, { readable: this.readable, writable: this.writable });
    m.available.push(token);
    m.nextToken++;
  }
  toString(): string {
    return `add(${this.readable}r, ${this.writable}w)`;
  }
}

function seg(base: number, count: number): { address: number; length: number }[] {
  return Array.from({ length: count }, (_, k) => ({ address: base + k * SEGMENT, length: SEGMENT }));
}

class PopCommand implements fc.Command<Model, Real> {
  check(m: Model): boolean {
    return !m.deviceSleeping;
  }
  run(m: Model, r: Real): void {
    const chain = r.ring.device.pop();
    if (m.available.length === 0) {
      expect(chain).toBeNull();
      return;
    }
    expect(chain).not.toBeNull();
    const token = m.available.shift()!;
    const shape = r.segmentsOf.get(token)!;
    expect(chain!.readable).toHaveLength(shape.readable);
    expect(chain!.writable).toHaveLength(shape.writable);
    expect(chain!.readableLength).toBe(shape.readable * SEGMENT);
    expect(chain!.writableLength).toBe(shape.writable * SEGMENT);
    chain!.readable.forEach((s, k) => expect(r.ring.memory.readU32(s.address)).toBe(tokenPattern(token, k)));
    m.held.push({ chain: chain!, token });
  }
  toString(): string {
    return 'pop';
  }
}

class PushCommand implements fc.Command<Model, Real> {
  constructor(
    readonly pick: number,
    readonly batch: number,
    /** Bit k set: element k reports half its writable length (a partial write). */
    readonly partial: number,
  ) {}
  check(m: Model): boolean {
    return m.held.length > 0;
  }
  run(m: Model, r: Real): void {
    const { device, memory } = r.ring;
    // IN_ORDER: the device must use the oldest first.
    const count = Math.min(this.batch, m.held.length);
    const start = r.features.inOrder ? 0 : this.pick % (m.held.length - count + 1);
    const taken = m.held.splice(start, count);
    for (const { chain, token } of taken) for (const s of chain.writable) memory.writeU32(s.address, tokenPattern(token, 1000));
    const lengths = taken.map(({ chain }, k) => ((this.partial >> k) & 1 ? chain.writableLength >> 1 : chain.writableLength));
    if (count === 1) {
      const { chain, token } = taken[0]!;
      device.pushUsed(chain.head, lengths[0]!);
      m.used.push({ token, length: lengths[0]! });
    } else {
      // With IN_ORDER, full-length runs share one used entry; lengths stay exact either way.
      device.pushUsedBatch(taken.map(({ chain }, k) => ({ head: chain.head, length: lengths[k]! })));
      taken.forEach(({ token }, k) => m.used.push({ token, length: lengths[k]! }));
    }
  }
  toString(): string {
    return `push(${this.pick}, x${this.batch}, partial ${this.partial})`;
  }
}

class GetUsedCommand implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const used = r.ring.driver.getUsed();
    if (m.used.length === 0) {
      expect(used).toBeNull();
      return;
    }
    const expected = m.used.shift()!;
    expect(used).toEqual(expected);
    expect(m.returned.has(expected.token)).toBe(false);
    m.returned.add(expected.token);
    const slot = r.slotOf.get(expected.token)!;
    const shape = r.segmentsOf.get(expected.token)!;
    const base = r.ring.dataAddress + slot * r.slotBytes + shape.readable * SEGMENT;
    for (let k = 0; k < shape.writable; k++) expect(r.ring.memory.readU32(base + k * SEGMENT)).toBe(tokenPattern(expected.token, 1000));
    r.freeSlots.push(slot);
    r.slotOf.delete(expected.token);
  }
  toString(): string {
    return 'getUsed';
  }
}

/** The driver kicks if kickPrepare says so; a sleeping device must then have nothing to do. */
class KickCommand implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    if (r.ring.driver.kickPrepare()) {
      if (m.deviceSleeping) {
        m.deviceSleeping = false;
        r.ring.device.disableNotification();
      }
    } else if (m.deviceSleeping) {
      // §2.7.10: no lost wakeup.
      expect(m.available.length).toBe(0);
    }
  }
  toString(): string {
    return 'kick';
  }
}

/** The device goes to sleep when enableNotification() says nothing raced in. */
class DeviceSleepCommand implements fc.Command<Model, Real> {
  check(m: Model): boolean {
    return !m.deviceSleeping;
  }
  run(m: Model, r: Real): void {
    const more = r.ring.device.enableNotification();
    expect(more).toBe(m.available.length > 0);
    if (more) r.ring.device.disableNotification();
    else m.deviceSleeping = true;
  }
  toString(): string {
    return 'deviceSleep';
  }
}

/** The device interrupts if needsNotification says so; a sleeping driver must then have nothing pending. */
class InterruptCommand implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    if (r.ring.device.needsNotification()) {
      if (m.driverSleeping) {
        m.driverSleeping = false;
        r.ring.driver.disableCallback();
      }
    } else if (m.driverSleeping) {
      expect(m.used.length).toBe(0);
    }
  }
  toString(): string {
    return 'interrupt';
  }
}

class DriverSleepCommand implements fc.Command<Model, Real> {
  check(m: Model): boolean {
    return !m.driverSleeping;
  }
  run(m: Model, r: Real): void {
    const idle = r.ring.driver.enableCallback();
    expect(idle).toBe(m.used.length === 0);
    if (idle) m.driverSleeping = true;
    else r.ring.driver.disableCallback();
  }
  toString(): string {
    return 'driverSleep';
  }
}

const commands = [
  fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 })).map(([rd, wr]) => new AddCommand(rd, wr)),
  fc.constant(new PopCommand()),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 4 }), fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 15 }))).map(([pick, batch, partial]) => new PushCommand(pick, batch, partial)),
  fc.constant(new GetUsedCommand()),
  fc.constant(new KickCommand()),
  fc.constant(new DeviceSleepCommand()),
  fc.constant(new InterruptCommand()),
  fc.constant(new DriverSleepCommand()),
];

function setup(log2Size: number, features: QueueFeatures): () => { model: Model; real: Real } {
  return () => {
    const size = 1 << log2Size;
    const slots = Math.min(size, 256);
    const slotBytes = 8 * SEGMENT;
    const ring = createSplitRing<number>({ size, features, indirectMaxDescriptors: 8, dataSize: slots * slotBytes });
    const freeSlots = Array.from({ length: slots }, (_, k) => slots - 1 - k);
    return {
      model: { available: [], held: [], used: [], returned: new Set(), nextToken: 0, deviceSleeping: false, driverSleeping: false },
      real: { ring, features, slotBytes, freeSlots, slotOf: new Map(), segmentsOf: new Map() },
    };
  };
}

describe('split ring: model-based (driver and device against a model)', () => {
  it('every buffer comes back exactly once, with its length and contents, and no notification is lost', () => {
    fc.assert(
      fc.property(
        fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 5 }) }, { weight: 1, arbitrary: fc.integer({ min: 6, max: 15 }) }),
        fc.record({ eventIdx: fc.boolean(), indirect: fc.boolean(), inOrder: fc.boolean() }),
        fc.commands(commands, { maxCommands: 120 }),
        (log2Size, features, cmds) => {
          fc.modelRun(setup(log2Size, features), cmds);
        },
      ),
      { numRuns: Number((globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.VIRTIO_TS_MODEL_RUNS ?? 60) },
    );
  });

  it('16-bit indices wrap: 70,000+ round trips with random batches, every buffer back once with its contents', () => {
    for (const features of [
      { eventIdx: false, indirect: false, inOrder: false },
      { eventIdx: true, indirect: true, inOrder: false },
      { eventIdx: true, indirect: false, inOrder: true },
    ]) {
      const ring = createSplitRing<number>({ size: 8, features, indirectMaxDescriptors: 4, dataSize: 8 * 64 });
      const { driver, device, memory, dataAddress } = ring;
      let seed = 12345;
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      let next = 0;
      let returned = 0;
      const slotOf = new Map<number, number>();
      const freeSlots = [0, 1, 2, 3, 4, 5, 6, 7];
      const held: DescriptorChain[] = [];
      let kicks = 0;
      let interrupts = 0;
      while (returned < 70_000) {
        for (let k = random(4); k >= 0 && freeSlots.length > 0 && driver.freeCount >= 2; k--) {
          const slot = freeSlots.pop()!;
          memory.writeU32(dataAddress + slot * 64, next);
          driver.add([{ address: dataAddress + slot * 64, length: 8 }], [{ address: dataAddress + slot * 64 + 32, length: 8 }], next);
          slotOf.set(next, slot);
          next++;
        }
        if (driver.kickPrepare()) kicks++;
        for (let chain = device.pop(); chain !== null; chain = device.pop()) held.push(chain);
        if (held.length === 0) continue;
        const count = 1 + random(held.length);
        const batch = features.inOrder ? held.splice(0, count) : held.splice(random(held.length - count + 1), count);
        for (const chain of batch) memory.writeU32(chain.writable[0]!.address, memory.readU32(chain.readable[0]!.address) ^ 0xffff_ffff);
        device.pushUsedBatch(batch.map((c) => ({ head: c.head, length: 8 })));
        if (device.needsNotification()) interrupts++;
        for (let used = driver.getUsed(); used !== null; used = driver.getUsed()) {
          // Plain checks (expect() per op would dominate the run time).
          const slot = slotOf.get(used.token);
          if (slot === undefined || !slotOf.delete(used.token)) throw new Error(`token ${used.token} returned twice or never added`);
          if (memory.readU32(dataAddress + slot * 64 + 32) !== (used.token ^ 0xffff_ffff) >>> 0) throw new Error(`token ${used.token}: wrong contents`);
          if (used.length !== 8) throw new Error(`token ${used.token}: wrong length ${used.length}`);
          freeSlots.push(slot);
          returned++;
        }
      }
      expect(device.saveState().nextUsed).toBe(new MockIdx(ring).usedIdx);
      expect(returned + slotOf.size).toBe(next);
      expect(kicks).toBeGreaterThan(0);
      expect(interrupts).toBeGreaterThan(0);
    }
  });
});

class MockIdx {
  constructor(private readonly ring: SplitRing<number>) {}
  get usedIdx(): number {
    return this.ring.memory.atomicLoadU16(this.ring.layout.usedRing + 2);
  }
}
