import { MemoryError } from './errors.js';
import { GuestRegion, MAX_GUEST_ADDRESS, type GuestAddress, type GuestRegionOptions } from './guest-region.js';

// A private word for fence(): any Atomics read-modify-write is a full barrier.
const fenceWord = new Int32Array(typeof SharedArrayBuffer !== 'undefined' ? new SharedArrayBuffer(4) : new ArrayBuffer(4));

/**
 * Guest-physical memory: an ordered map of non-overlapping {@link GuestRegion}s.
 *
 * Every access is bounds-checked. An access outside any region, across a hole, overflowing or
 * ending past 2^53 throws a {@link MemoryError} before touching a byte: there are no partial
 * accesses. Region lookup keeps the last hit, so the hot path (the same region again and
 * again) costs two comparisons.
 *
 * @example
 * ```ts
 * const mem = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
 * mem.writeU32(0x1000, 0xdeadbeef);
 * mem.readU32(0x1000); // 0xdeadbeef
 * mem.slice(0x1000, 4); // Uint8Array [0xef, 0xbe, 0xad, 0xde], zero-copy
 * mem.readU8(1 << 20); // throws MemoryError OUT_OF_BOUNDS
 * ```
 */
export class GuestMemory {
  /** Regions in ascending address order. */
  readonly regions: readonly GuestRegion[];
  private lastHit: GuestRegion;

  constructor(regions: readonly GuestRegion[]) {
    if (regions.length === 0) throw new MemoryError('INVALID_REGION', 'guest memory needs at least one region');
    const sorted = [...regions].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1]!;
      const current = sorted[i]!;
      if (current.start < previous.end) {
        throw new MemoryError('INVALID_REGION', 'regions overlap', { address: current.start, length: current.size });
      }
    }
    this.regions = Object.freeze(sorted);
    this.lastHit = sorted[0]!;
  }

  /** Builds guest memory from region descriptions (each gets a new SharedArrayBuffer unless given one). */
  static create(regions: readonly GuestRegionOptions[]): GuestMemory {
    return new GuestMemory(regions.map((r) => new GuestRegion(r)));
  }

  /** Total bytes mapped. */
  get size(): number {
    let total = 0;
    for (const r of this.regions) total += r.size;
    return total;
  }

  /** The region holding `address`, or undefined when it is unmapped or invalid. */
  findRegion(address: GuestAddress): GuestRegion | undefined {
    const hit = this.lastHit;
    if (address >= hit.start && address < hit.end) return hit;
    const regions = this.regions;
    let lo = 0;
    let hi = regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = regions[mid]!;
      if (address < r.start) hi = mid - 1;
      else if (address >= r.end) lo = mid + 1;
      else {
        this.lastHit = r;
        return r;
      }
    }
    return undefined;
  }

  /**
   * The region that holds all of `[address, address + length)`; throws when the range is
   * invalid, unmapped, or spans more than one region.
   */
  regionFor(address: GuestAddress, length: number, op = 'access'): GuestRegion {
    checkRange(address, length, op);
    const r = this.findRegion(address);
    if (r === undefined) throw new MemoryError('OUT_OF_BOUNDS', 'address is not backed by guest memory', { address, length, op });
    if (address + length > r.end) {
      throw new MemoryError(
        this.isMapped(address, length) ? 'CROSSES_REGION' : 'OUT_OF_BOUNDS',
        this.isMapped(address, length) ? 'range spans two regions' : 'range runs past the end of guest memory',
        { address, length, op },
      );
    }
    return r;
  }

  /** True when every byte of `[address, address + length)` is mapped (possibly across regions). */
  isMapped(address: GuestAddress, length: number): boolean {
    if (!isValidRange(address, length)) return false;
    if (length === 0) return this.findRegion(address) !== undefined || this.regions.some((r) => r.end === address);
    let cursor = address;
    const end = address + length;
    while (cursor < end) {
      const r = this.findRegion(cursor);
      if (r === undefined) return false;
      cursor = r.end;
    }
    return true;
  }

  readU8(address: GuestAddress): number {
    const r = this.regionFor(address, 1, 'readU8');
    return r.bytes[address - r.start]!;
  }
  readU16(address: GuestAddress): number {
    const r = this.regionFor(address, 2, 'readU16');
    return r.view.getUint16(address - r.start, true);
  }
  readU32(address: GuestAddress): number {
    const r = this.regionFor(address, 4, 'readU32');
    return r.view.getUint32(address - r.start, true);
  }
  readU64(address: GuestAddress): bigint {
    const r = this.regionFor(address, 8, 'readU64');
    return r.view.getBigUint64(address - r.start, true);
  }
  writeU8(address: GuestAddress, value: number): void {
    const r = this.regionFor(address, 1, 'writeU8');
    r.bytes[address - r.start] = value;
  }
  writeU16(address: GuestAddress, value: number): void {
    const r = this.regionFor(address, 2, 'writeU16');
    r.view.setUint16(address - r.start, value, true);
  }
  writeU32(address: GuestAddress, value: number): void {
    const r = this.regionFor(address, 4, 'writeU32');
    r.view.setUint32(address - r.start, value, true);
  }
  writeU64(address: GuestAddress, value: bigint): void {
    const r = this.regionFor(address, 8, 'writeU64');
    r.view.setBigUint64(address - r.start, BigInt.asUintN(64, value), true);
  }

  /**
   * A zero-copy view of `[address, address + length)`. The range must lie inside one region
   * (`CROSSES_REGION` otherwise): use {@link read}/{@link write} to copy across regions.
   * The view has exactly `length` bytes.
   */
  slice(address: GuestAddress, length: number): Uint8Array {
    const r = this.regionFor(address, length, 'slice');
    const begin = address - r.start;
    return r.bytes.subarray(begin, begin + length);
  }

  /** Copies `destination.length` bytes out of guest memory starting at `address` (regions may be adjacent, not holes). */
  read(address: GuestAddress, destination: Uint8Array): void {
    this.forEachChunk(address, destination.length, 'read', (r, begin, done, n) => {
      destination.set(r.bytes.subarray(begin, begin + n), done);
    });
  }

  /** Copies `source` into guest memory at `address` (regions may be adjacent, not holes). */
  write(address: GuestAddress, source: Uint8Array): void {
    this.forEachChunk(address, source.length, 'write', (r, begin, done, n) => {
      r.bytes.set(source.subarray(done, done + n), begin);
    });
  }

  /** Sets `length` bytes at `address` to `value`. */
  fill(address: GuestAddress, length: number, value = 0): void {
    this.forEachChunk(address, length, 'fill', (r, begin, _done, n) => {
      r.bytes.fill(value, begin, begin + n);
    });
  }

  /** Sequentially consistent 16-bit load (ring indices). `address` must be 2-aligned. */
  atomicLoadU16(address: GuestAddress): number {
    const r = this.atomicRegion(address, 2, 'atomicLoadU16');
    return Atomics.load(r.u16, (r.offset + address - r.start) >>> 1);
  }
  atomicStoreU16(address: GuestAddress, value: number): void {
    const r = this.atomicRegion(address, 2, 'atomicStoreU16');
    Atomics.store(r.u16, (r.offset + address - r.start) >>> 1, value);
  }
  atomicLoadU32(address: GuestAddress): number {
    const r = this.atomicRegion(address, 4, 'atomicLoadU32');
    return Atomics.load(r.u32, (r.offset + address - r.start) >>> 2);
  }
  atomicStoreU32(address: GuestAddress, value: number): void {
    const r = this.atomicRegion(address, 4, 'atomicStoreU32');
    Atomics.store(r.u32, (r.offset + address - r.start) >>> 2, value);
  }

  /**
   * A full memory barrier (the spec's "memory barrier" between writing a ring and its index).
   * JavaScript has no bare fence; an Atomics read-modify-write is one in every engine.
   */
  fence(): void {
    Atomics.add(fenceWord, 0, 0);
  }

  private atomicRegion(address: GuestAddress, width: 2 | 4, op: string): GuestRegion {
    const r = this.regionFor(address, width, op);
    if (address % width !== 0) throw new MemoryError('MISALIGNED', `atomic access must be ${width}-byte aligned`, { address, op });
    return r;
  }

  private forEachChunk(
    address: GuestAddress,
    length: number,
    op: string,
    visit: (region: GuestRegion, begin: number, done: number, n: number) => void,
  ): void {
    checkRange(address, length, op);
    // Check the whole range first: no partial access.
    if (length > 0 && !this.isMapped(address, length)) {
      throw new MemoryError('OUT_OF_BOUNDS', 'range is not fully backed by guest memory', { address, length, op });
    }
    let done = 0;
    while (done < length) {
      const cursor = address + done;
      const r = this.findRegion(cursor)!;
      const n = Math.min(length - done, r.end - cursor);
      visit(r, cursor - r.start, done, n);
      done += n;
    }
  }
}

/** True when `address` and `length` are integers and the range ends at or below 2^53. */
export function isValidRange(address: number, length: number): boolean {
  return (
    Number.isSafeInteger(address) && address >= 0 && Number.isSafeInteger(length) && length >= 0 && address + length <= MAX_GUEST_ADDRESS
  );
}

function checkRange(address: number, length: number, op: string): void {
  if (!isValidRange(address, length)) {
    throw new MemoryError('INVALID_ADDRESS', 'address or length is not a valid guest range', { address, length, op });
  }
}
