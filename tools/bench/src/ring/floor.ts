// The contract floor: what any implementation of the DeviceQueue / DriverQueue contract pays per
// single-descriptor round trip on this engine, measured rather than argued. It does the bare
// baseline's memory operations (same split layout, same two Atomics stores and two Atomics loads
// on the index words) PLUS only what the contract itself requires:
//   - four calls through objects (driver.add, device.pop, device.pushUsed, driver.getUsed);
//   - a free list and a token per head (getUsed must give the caller's token back);
//   - the fresh objects the contract returns: a DescriptorChain with a fresh segment array
//     holding a fresh segment (callers may keep a chain across an await until pushUsed and
//     beyond), and a fresh UsedBuffer from getUsed.
// It validates nothing (no bounds, loops, lengths, in-flight tracking or notification state), so
// it is NOT a usable ring: it is an upper bound for ours.
import { flatRing } from './baseline.js';

const EMPTY: readonly { address: number; length: number }[] = Object.freeze([]);

interface FloorChain {
  readonly head: number;
  readonly readable: readonly { address: number; length: number }[];
  readonly writable: readonly { address: number; length: number }[];
  readonly readableLength: number;
  readonly writableLength: number;
  readonly descriptorCount: number;
}

/**
 * Single-descriptor round trips per second of the contract floor, in one thread, with the
 * same loop as `splitRoundTripper(1)`. Returns a function of `ops`, warm across calls.
 */
export function contractFloorRoundTripper(now: () => number = () => performance.now()): (ops: number) => number {
  const size = 256;
  const mask = size - 1;
  const ring = flatRing(new SharedArrayBuffer(1 << 16), size);
  const { u16, u32 } = ring;
  const dataAddress = 0x8000;
  const nextFree = new Uint16Array(size);
  for (let i = 0; i < size; i++) nextFree[i] = (i + 1) & mask;
  const tokens = new Array<number | undefined>(size).fill(undefined);

  const driver = {
    freeHead: 0,
    availIdx: 0,
    lastUsed: 0,
    usedShadow: 0,
    add(readable: readonly { address: number; length: number }[], token: number): void {
      const s = readable[0]!;
      const head = this.freeHead;
      const b = head * 4;
      u32[b] = s.address;
      u32[b + 1] = 0;
      u32[b + 2] = s.length;
      u32[b + 3] = 0;
      this.freeHead = nextFree[head]!;
      tokens[head] = token;
      u16[ring.availRing + (this.availIdx & mask)] = head;
      this.availIdx = (this.availIdx + 1) & 0xffff;
      Atomics.store(u16, ring.availIdx, this.availIdx);
    },
    getUsed(): { token: number; length: number } | null {
      if (this.lastUsed === this.usedShadow) {
        this.usedShadow = Atomics.load(u16, ring.usedIdx);
        if (this.lastUsed === this.usedShadow) return null;
      }
      const slot = ring.usedRing32 + (this.lastUsed & mask) * 2;
      const id = u32[slot]!;
      const length = u32[slot + 1]!;
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      nextFree[id] = this.freeHead;
      this.freeHead = id;
      const token = tokens[id]!;
      tokens[id] = undefined;
      return { token, length };
    },
  };
  const device = {
    nextAvail: 0,
    availShadow: 0,
    nextUsed: 0,
    pop(): FloorChain | null {
      if (this.availShadow === this.nextAvail) {
        this.availShadow = Atomics.load(u16, ring.availIdx);
        if (this.availShadow === this.nextAvail) return null;
      }
      const head = u16[ring.availRing + (this.nextAvail & mask)]!;
      this.nextAvail = (this.nextAvail + 1) & 0xffff;
      const b = head * 4;
      const address = u32[b]!;
      const length = u32[b + 2]!;
      const writable = (u32[b + 3]! & 2) !== 0;
      return writable
        ? { head, readable: EMPTY, writable: [{ address, length }], readableLength: 0, writableLength: length, descriptorCount: 1 }
        : { head, readable: [{ address, length }], writable: EMPTY, readableLength: length, writableLength: 0, descriptorCount: 1 };
    },
    pushUsed(head: number, length: number): void {
      const slot = ring.usedRing32 + (this.nextUsed & mask) * 2;
      u32[slot] = head;
      u32[slot + 1] = length;
      this.nextUsed = (this.nextUsed + 1) & 0xffff;
      Atomics.store(u16, ring.usedIdx, this.nextUsed);
    },
  };
  const readable = [{ address: dataAddress, length: 64 }];
  return (ops) => {
    let sink = 0;
    const started = now();
    for (let i = 0; i < ops; i++) {
      driver.add(readable, i);
      const chain = device.pop()!;
      device.pushUsed(chain.head, chain.writableLength);
      const used = driver.getUsed()!;
      if (used.token !== i) throw new Error(`contract floor lost buffer ${i}`);
      sink += used.length;
    }
    const seconds = (now() - started) / 1000;
    if (sink < 0) console.log(sink);
    return ops / seconds;
  };
}
