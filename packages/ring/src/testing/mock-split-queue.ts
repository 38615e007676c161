import { GuestMemory } from '@virtio-ts/memory';
import type { QueueFeatures, SplitQueueLayout } from '../types.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { SplitDeviceQueue } from '../split/device-queue.js';
import { SplitDriverQueue, indirectAreaSize } from '../split/driver-queue.js';
import { availEventAddress, splitQueueFootprint, splitQueueLayout, usedEventAddress } from '../split/layout.js';

/** A descriptor as the driver writes it (§2.7.5): every field raw, nothing checked. */
export interface RawDescriptor {
  /** A bigint writes any le64 (numbers above 2^53 lose precision). */
  readonly address: number | bigint;
  readonly length: number;
  readonly flags?: number;
  readonly next?: number;
}

/** A segment for {@link MockSplitQueue.writeChain}: `write` marks it device-writable. */
export interface MockSegment {
  readonly address: number;
  readonly length: number;
  readonly write?: boolean;
}

export interface MockSplitQueueOptions {
  /** Queue size (default 16). */
  readonly size?: number;
  /** Bytes of the single guest memory region at address 0 (default 1 MiB). Ignored with `memory`. */
  readonly memorySize?: number;
  /** Bring your own guest memory (then give `layout` or `base`). */
  readonly memory?: GuestMemory;
  /** Where the rings start (default 0). */
  readonly base?: number;
}

/**
 * Plays the driver of a split queue by hand (like rust-vmm virtio-queue's `mock.rs`): writes raw
 * descriptors, indirect tables and avail entries, with no validation, so that tests of the
 * device side (here and in other packages) can build any ring a hostile guest could.
 *
 * @example
 * ```ts
 * const mock = new MockSplitQueue({ size: 8 });
 * const header = mock.alloc(16);
 * const data = mock.alloc(512);
 * const head = mock.writeChain(0, [{ address: header, length: 16 }, { address: data, length: 512, write: true }]);
 * mock.publish(head);
 * const device = mock.createDevice();
 * device.pop(); // { head: 0, readable: [header], writable: [data], ... }
 * ```
 */
export class MockSplitQueue {
  readonly memory: GuestMemory;
  readonly layout: SplitQueueLayout;
  private nextAlloc: number;

  constructor(options: MockSplitQueueOptions = {}) {
    const size = options.size ?? 16;
    this.memory = options.memory ?? GuestMemory.create([{ guestAddress: 0, size: options.memorySize ?? 1 << 20 }]);
    this.layout = splitQueueLayout(size, options.base ?? 0);
    this.nextAlloc = alignUp(this.layout.descTable + splitQueueFootprint(size), 4096);
  }

  get size(): number {
    return this.layout.size;
  }

  /** Reserves `length` bytes of guest memory after the rings (bump allocator, `alignment` default 16). */
  alloc(length: number, alignment = 16): number {
    const address = alignUp(this.nextAlloc, alignment);
    this.nextAlloc = address + length;
    return address;
  }

  /** A device queue over this ring. */
  createDevice(features: Partial<QueueFeatures> = {}): SplitDeviceQueue {
    return new SplitDeviceQueue(this.layout, { memory: this.memory, features });
  }

  /** Writes descriptor `index` of the descriptor table (index is not checked: the table is `size` entries). */
  writeDescriptor(index: number, descriptor: RawDescriptor): void {
    writeRawDescriptor(this.memory, this.layout.descTable + 16 * index, descriptor);
  }

  /** Writes an indirect table (or any descriptor array) at `address`. */
  writeTable(address: number, descriptors: readonly RawDescriptor[]): void {
    descriptors.forEach((d, k) => writeRawDescriptor(this.memory, address + 16 * k, d));
  }

  /**
   * Writes a direct chain in consecutive descriptors from `first` (wrapping), linked with NEXT,
   * with WRITE on writable segments. Returns `first` (the head).
   */
  writeChain(first: number, segments: readonly MockSegment[]): number {
    segments.forEach((s, k) => {
      const index = (first + k) % this.size;
      const last = k === segments.length - 1;
      this.writeDescriptor(index, {
        address: s.address,
        length: s.length,
        flags: (s.write === true ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
        next: last ? 0 : (first + k + 1) % this.size,
      });
    });
    return first;
  }

  /** Puts `heads` in the available ring and moves avail idx past them (16-bit wrap). */
  publish(...heads: number[]): void {
    let idx = this.availIdx;
    for (const head of heads) {
      this.memory.writeU16(this.layout.availRing + 4 + 2 * (idx % this.size), head);
      idx = (idx + 1) & 0xffff;
    }
    this.availIdx = idx;
  }

  /** avail.idx, raw. */
  get availIdx(): number {
    return this.memory.atomicLoadU16(this.layout.availRing + 2);
  }
  set availIdx(value: number) {
    this.memory.atomicStoreU16(this.layout.availRing + 2, value & 0xffff);
  }
  /** avail.flags, raw. */
  get availFlags(): number {
    return this.memory.readU16(this.layout.availRing);
  }
  set availFlags(value: number) {
    this.memory.writeU16(this.layout.availRing, value);
  }
  /** used_event (the driver's, at the end of the available ring). */
  get usedEvent(): number {
    return this.memory.readU16(usedEventAddress(this.layout));
  }
  set usedEvent(value: number) {
    this.memory.writeU16(usedEventAddress(this.layout), value & 0xffff);
  }
  /** used.idx as the device wrote it. */
  get usedIdx(): number {
    return this.memory.atomicLoadU16(this.layout.usedRing + 2);
  }
  /** used.flags as the device wrote it. */
  get usedFlags(): number {
    return this.memory.readU16(this.layout.usedRing);
  }
  /** avail_event as the device wrote it. */
  get availEvent(): number {
    return this.memory.readU16(availEventAddress(this.layout));
  }
  /** Used ring entry at position `position` (taken mod size). */
  usedElement(position: number): { id: number; length: number } {
    const address = this.layout.usedRing + 4 + 8 * (position % this.size);
    return { id: this.memory.readU32(address), length: this.memory.readU32(address + 4) };
  }
}

function writeRawDescriptor(memory: GuestMemory, address: number, d: RawDescriptor): void {
  memory.writeU64(address, BigInt(d.address));
  memory.writeU32(address + 8, d.length >>> 0);
  memory.writeU16(address + 12, d.flags ?? 0);
  memory.writeU16(address + 14, d.next ?? 0);
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Options of {@link createSplitRing}. */
export interface SplitRingOptions {
  readonly size: number;
  readonly features?: Partial<QueueFeatures>;
  /** Entries per indirect table (default: min(size, 64)); an area is reserved when `features.indirect`. */
  readonly indirectMaxDescriptors?: number;
  /** Bytes of data area after the rings (default 1 MiB). */
  readonly dataSize?: number;
  /** Chains of at least this many segments go indirect (default 2). */
  readonly indirectThreshold?: number;
}

/** A driver and a device over one freshly built guest memory, for tests and benchmarks. */
export interface SplitRing<T> {
  readonly memory: GuestMemory;
  readonly layout: SplitQueueLayout;
  readonly driver: SplitDriverQueue<T>;
  readonly device: SplitDeviceQueue;
  /** First guest address free for buffers, and the bytes available there. */
  readonly dataAddress: number;
  readonly dataSize: number;
}

/**
 * Lays out a split ring (rings, indirect area, data area) in one new SharedArrayBuffer-backed
 * region at guest address 0 and builds both sides over it.
 */
export function createSplitRing<T>(options: SplitRingOptions): SplitRing<T> {
  const { size } = options;
  const layout = splitQueueLayout(size, 0);
  const indirect = options.features?.indirect === true && size >= 2;
  const maxDescriptors = Math.min(size, options.indirectMaxDescriptors ?? 64);
  const indirectAddress = alignUp(splitQueueFootprint(size), 4096);
  const dataAddress = alignUp(indirectAddress + (indirect ? indirectAreaSize(size, maxDescriptors) : 0), 4096);
  const dataSize = options.dataSize ?? 1 << 20;
  const memory = GuestMemory.create([{ guestAddress: 0, size: dataAddress + dataSize }]);
  const driver = new SplitDriverQueue<T>(layout, {
    memory,
    features: options.features,
    indirectArea: indirect ? { address: indirectAddress, maxDescriptors } : undefined,
    indirectThreshold: options.indirectThreshold,
  });
  const device = new SplitDeviceQueue(layout, { memory, features: options.features });
  return { memory, layout, driver, device, dataAddress, dataSize };
}
