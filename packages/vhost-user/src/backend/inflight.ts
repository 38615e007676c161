// QEMU docs/interop/vhost-user.rst "Inflight I/O tracking": a shared buffer, kept by the front-end
// across back-end restarts, in which the back-end records which split-ring heads it has popped and
// not yet used, so that a restarted back-end can resubmit them (requests complete out of order, so
// the avail ring alone cannot tell which ones were still in flight).
import { fstatSync } from 'node:fs';
import { Mapping, closeFd, createMemfd } from '@virtio-ts/host';
import { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { RingError, SplitDeviceQueue, type DescriptorChain, type DeviceQueue, type QueueFeatures, type QueueState, type SplitQueueLayout, type UsedElement } from '@virtio-ts/ring';
import { VhostUserError } from '../errors.js';

/** `QueueRegionSplit` header: features u64, version u16, desc_num u16, last_batch_head u16, used_idx u16. */
const SPLIT_HEADER_SIZE = 16;
/** `DescStateSplit`: inflight u8, padding[5], next u16, counter u64. */
const SPLIT_DESC_STATE_SIZE = 16;
const INFLIGHT_ALIGNMENT = 64;
/** Largest inflight buffer we create or map: 64 queues of 32768 descriptors need 32 MiB. */
export const MAX_INFLIGHT_SIZE = 64 << 20;
const PAGE_SIZE = 4096;

/**
 * Bytes of one split queue's region. The layout is the back-end's own business (the front-end only
 * keeps the buffer); we size it as libvhost-user does — `DescStateSplit × queue size + 2`, aligned
 * to 64 — so a buffer can be handed between the two.
 */
export function splitInflightQueueSize(queueSize: number): number {
  return Math.ceil((SPLIT_DESC_STATE_SIZE * queueSize + 2) / INFLIGHT_ALIGNMENT) * INFLIGHT_ALIGNMENT;
}

/** What recovery found in one queue's region when its ring started. */
export interface InflightRecovery {
  /** Heads popped before the restart and never used, in the order they were popped (counter order). */
  readonly heads: readonly number[];
  /** Entries of an interrupted last used batch that were cleared (used idx had moved past them). */
  readonly batchCleared: number;
  /** The largest counter seen, so the back-end's global counter continues after it. */
  readonly maxCounter: number;
}

/** One split queue's `QueueRegionSplit` inside the inflight buffer. */
export class SplitInflightRegion {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  /** Entries the region has room for (`desc_num` as sized by GET_INFLIGHT_FD's queue size). */
  readonly capacity: number;

  constructor(buffer: ArrayBufferLike, byteOffset: number, capacity: number) {
    const bytes = SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * capacity;
    this.u8 = new Uint8Array(buffer, byteOffset, bytes);
    this.u16 = new Uint16Array(buffer, byteOffset, bytes / 2);
    this.u32 = new Uint32Array(buffer, byteOffset, bytes / 4);
    this.capacity = capacity;
  }

  get version(): number {
    return Atomics.load(this.u16, 4);
  }

  get descNum(): number {
    return Atomics.load(this.u16, 5);
  }

  get lastBatchHead(): number {
    return Atomics.load(this.u16, 6);
  }

  get usedIdx(): number {
    return Atomics.load(this.u16, 7);
  }

  isInflight(head: number): boolean {
    return Atomics.load(this.u8, SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head) !== 0;
  }

  counterOf(head: number): number {
    const i = (SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head + 8) / 4;
    return this.u32[i]! + this.u32[i + 1]! * 2 ** 32;
  }

  /** A fresh region (version 0): version 1, desc_num = the ring size, used_idx = the ring's used idx. */
  initialise(queueSize: number, usedIdx: number): void {
    this.u8.fill(0);
    Atomics.store(this.u16, 5, queueSize);
    Atomics.store(this.u16, 7, usedIdx);
    Atomics.store(this.u16, 4, 1);
  }

  /**
   * "When reconnecting": if used_idx lags the used ring's idx, the last batch was used but its
   * entries were not yet cleared — clear the batch size's entries along the last_batch_head list;
   * then collect the inflight heads in counter order. Every value read here is untrusted (the
   * buffer outlived a crashed process and is writable by the front-end): heads and links must lie
   * inside the ring, the batch cannot be longer than the ring.
   */
  recover(queueSize: number, usedIdx: number): InflightRecovery {
    if (queueSize > this.capacity) throw new VhostUserError('BAD_PAYLOAD', `inflight region holds ${this.capacity} entries, the ring has ${queueSize}`, { request: 'SET_INFLIGHT_FD' });
    let batchCleared = 0;
    const batch = (usedIdx - this.usedIdx) & 0xffff;
    if (batch !== 0) {
      if (batch > queueSize) throw new VhostUserError('BAD_PAYLOAD', `inflight region: last used batch of ${batch} entries in a ring of ${queueSize}`, { request: 'SET_INFLIGHT_FD' });
      let head = this.lastBatchHead;
      for (let n = 0; n < batch; n++) {
        if (head >= queueSize) throw new VhostUserError('BAD_PAYLOAD', `inflight region: last batch links to descriptor ${head} outside the ring`, { request: 'SET_INFLIGHT_FD' });
        Atomics.store(this.u8, SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head, 0);
        batchCleared++;
        head = this.u16[(SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head + 6) / 2]!;
      }
      Atomics.store(this.u16, 7, usedIdx);
    }
    const found: { head: number; counter: number }[] = [];
    let maxCounter = 0;
    for (let head = 0; head < this.capacity; head++) {
      if (!this.isInflight(head)) continue;
      if (head >= queueSize) throw new VhostUserError('BAD_PAYLOAD', `inflight region: descriptor ${head} in flight outside the ring of ${queueSize}`, { request: 'SET_INFLIGHT_FD' });
      const counter = this.counterOf(head);
      found.push({ head, counter });
      if (counter > maxCounter) maxCounter = counter;
    }
    found.sort((a, b) => a.counter - b.counter || a.head - b.head);
    Atomics.store(this.u16, 5, queueSize);
    return { heads: found.map((f) => f.head), batchCleared, maxCounter };
  }

  /** "When receiving available buffers": counter first, then inflight = 1. */
  markPopped(head: number, counter: number): void {
    const base = SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head;
    this.u32[(base + 8) / 4] = counter % 2 ** 32;
    this.u32[(base + 12) / 4] = Math.floor(counter / 2 ** 32);
    Atomics.store(this.u8, base, 1);
  }

  /** "When supplying used buffers", before used idx moves: link `head` into the last batch. */
  linkUsed(head: number): void {
    this.u16[(SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head + 6) / 2] = this.lastBatchHead;
    Atomics.store(this.u16, 6, head);
  }

  /** After used idx moved: inflight = 0 for the batch, then used_idx = the used ring's idx. */
  clearUsed(heads: readonly number[], usedIdx: number): void {
    for (const head of heads) Atomics.store(this.u8, SPLIT_HEADER_SIZE + SPLIT_DESC_STATE_SIZE * head, 0);
    Atomics.store(this.u16, 7, usedIdx);
  }
}

/**
 * The inflight buffer of one session: made by GET_INFLIGHT_FD (a fresh memfd, zero-filled) or
 * received with SET_INFLIGHT_FD (the buffer a previous back-end filled). Owns the fd and mapping.
 */
export class InflightBuffer {
  readonly fd: number;
  readonly numQueues: number;
  readonly queueSize: number;
  private readonly mapping: Mapping;
  private readonly regionSize: number;
  private readonly regions: SplitInflightRegion[] = [];

  private constructor(fd: number, mapping: Mapping, numQueues: number, queueSize: number) {
    this.fd = fd;
    this.mapping = mapping;
    this.numQueues = numQueues;
    this.queueSize = queueSize;
    this.regionSize = splitInflightQueueSize(queueSize);
    for (let i = 0; i < numQueues; i++) this.regions.push(new SplitInflightRegion(mapping.buffer, i * this.regionSize, queueSize));
  }

  /** GET_INFLIGHT_FD: a new zero-filled buffer for `numQueues` split queues of `queueSize`. */
  static create(numQueues: number, queueSize: number): InflightBuffer {
    const size = InflightBuffer.sizeFor(numQueues, queueSize, 'GET_INFLIGHT_FD');
    const fd = createMemfd('vhost-user-inflight', size);
    try {
      return new InflightBuffer(fd, Mapping.map(fd, size), numQueues, queueSize);
    } catch (error) {
      closeFd(fd);
      throw error;
    }
  }

  /**
   * SET_INFLIGHT_FD: maps `mmapSize` bytes at `mmapOffset` of `fd` (checked against the fd's size,
   * so a short file cannot SIGBUS us). Takes ownership of `fd` in every case.
   */
  static open(fd: number, mmapSize: number, mmapOffset: number, numQueues: number, queueSize: number): InflightBuffer {
    try {
      const needed = InflightBuffer.sizeFor(numQueues, queueSize, 'SET_INFLIGHT_FD');
      if (mmapSize < needed || mmapSize > MAX_INFLIGHT_SIZE) throw new VhostUserError('BAD_PAYLOAD', `inflight buffer of ${mmapSize} bytes for ${numQueues} queues of ${queueSize} (needs ${needed}, at most ${MAX_INFLIGHT_SIZE})`, { request: 'SET_INFLIGHT_FD' });
      if (mmapOffset % PAGE_SIZE !== 0) throw new VhostUserError('BAD_PAYLOAD', `inflight mmap offset ${mmapOffset} is not page aligned`, { request: 'SET_INFLIGHT_FD' });
      const fileSize = fstatSync(fd).size;
      if (mmapOffset + mmapSize > fileSize) throw new VhostUserError('BAD_PAYLOAD', `inflight buffer ${mmapOffset}+${mmapSize} past the end of its file (${fileSize} bytes)`, { request: 'SET_INFLIGHT_FD' });
      return new InflightBuffer(fd, Mapping.map(fd, mmapSize, { offset: mmapOffset }), numQueues, queueSize);
    } catch (error) {
      safeClose(fd);
      throw error;
    }
  }

  private static sizeFor(numQueues: number, queueSize: number, request: 'GET_INFLIGHT_FD' | 'SET_INFLIGHT_FD'): number {
    if (numQueues < 1 || queueSize < 1 || queueSize > 32768) throw new VhostUserError('BAD_PAYLOAD', `inflight buffer for ${numQueues} queues of ${queueSize} descriptors`, { request });
    return numQueues * splitInflightQueueSize(queueSize);
  }

  get size(): number {
    return this.mapping.length;
  }

  /** The region of queue `index`, or undefined past the queues the buffer was made for. */
  region(index: number): SplitInflightRegion | undefined {
    return this.regions[index];
  }

  close(): void {
    this.mapping.unmap();
    safeClose(this.fd);
  }
}

/** The back-end's counter of popped heads (the "global counter" of the spec), shared by its queues. */
export interface InflightCounter {
  next: number;
}

/**
 * A split {@link DeviceQueue} that records every pop and use in its inflight region, and first
 * hands out the chains a previous back-end left in flight (resubmission), in their original order.
 * The device sees an ordinary queue.
 */
export class InflightDeviceQueue implements DeviceQueue {
  private readonly inner: DeviceQueue;
  private readonly region: SplitInflightRegion;
  private readonly counter: InflightCounter;
  private readonly memory: GuestMemory;
  private readonly usedIdxAddress: number;
  private resubmit: DeviceQueue | null;
  private resubmitLeft: number;

  private constructor(inner: DeviceQueue, region: SplitInflightRegion, counter: InflightCounter, memory: GuestMemory, usedRing: number, resubmit: DeviceQueue | null, resubmitLeft: number) {
    this.inner = inner;
    this.region = region;
    this.counter = counter;
    this.memory = memory;
    this.usedIdxAddress = usedRing + 2;
    this.resubmit = resubmit;
    this.resubmitLeft = resubmitLeft;
  }

  /**
   * Builds the ring over `layout` with inflight tracking. A fresh region is initialised and the
   * ring starts at `base` (SET_VRING_BASE). A region in use is recovered: the heads still in
   * flight are resubmitted first, and the ring's next avail index is the used idx plus their
   * number (every head popped before the restart was either used or is in flight), whatever
   * base the front-end sent — QEMU sends the used idx after a back-end crash.
   */
  static open(options: { memory: GuestMemory; layout: SplitQueueLayout; features: QueueFeatures; index: number; base: number; region: SplitInflightRegion; counter: InflightCounter }): { queue: InflightDeviceQueue; recovery: InflightRecovery | null } {
    const { memory, layout, features, index, region, counter } = options;
    const usedIdx = memory.atomicLoadU16(layout.usedRing + 2);
    if (region.version === 0) {
      region.initialise(layout.size, usedIdx);
      const inner = SplitDeviceQueue.restore({ version: 1, layout: 'split', ring: layout, features, nextAvail: options.base & 0xffff, nextUsed: usedIdx, inFlight: [], broken: false }, { memory, features, index });
      return { queue: new InflightDeviceQueue(inner, region, counter, memory, layout.usedRing, null, 0), recovery: null };
    }
    const recovery = region.recover(layout.size, usedIdx);
    counter.next = Math.max(counter.next, recovery.maxCounter + 1);
    const heads = recovery.heads;
    const inner = SplitDeviceQueue.restore(
      { version: 1, layout: 'split', ring: layout, features, nextAvail: (usedIdx + heads.length) & 0xffff, nextUsed: usedIdx, inFlight: heads, broken: false },
      { memory, features, index },
    );
    const resubmit = heads.length > 0 ? resubmitQueue(memory, layout, features, index, heads) : null;
    return { queue: new InflightDeviceQueue(inner, region, counter, memory, layout.usedRing, resubmit, heads.length), recovery };
  }

  get layout(): 'split' | 'packed' {
    return this.inner.layout;
  }

  get size(): number {
    return this.inner.size;
  }

  get features(): QueueFeatures {
    return this.inner.features;
  }

  get broken(): boolean {
    return this.inner.broken;
  }

  get inFlight(): number {
    return this.inner.inFlight;
  }

  /** Chains still to be resubmitted. */
  get resubmitPending(): number {
    return this.resubmitLeft;
  }

  pop(): DescriptorChain | null {
    if (this.resubmitLeft > 0 && this.resubmit) {
      // The inner ring already counts these heads in flight; the region keeps their counters.
      this.resubmitLeft--;
      const source = this.resubmit;
      if (this.resubmitLeft === 0) this.resubmit = null;
      return source.pop();
    }
    let chain: DescriptorChain | null;
    try {
      chain = this.inner.pop();
    } catch (error) {
      // A non-fatal chain error still consumed an avail entry, and the device owns its head until
      // it uses it: it is in flight like any other.
      if (RingError.isInstance(error) && error.context.head !== undefined && !this.inner.broken) this.region.markPopped(error.context.head, this.counter.next++);
      throw error;
    }
    if (chain) this.region.markPopped(chain.head, this.counter.next++);
    return chain;
  }

  hasAvailable(): boolean {
    return this.resubmitLeft > 0 || this.inner.hasAvailable();
  }

  pushUsed(head: number, length: number): void {
    this.region.linkUsed(head);
    this.inner.pushUsed(head, length);
    this.region.clearUsed([head], this.memory.atomicLoadU16(this.usedIdxAddress));
  }

  pushUsedBatch(elements: readonly UsedElement[]): void {
    for (const e of elements) this.region.linkUsed(e.head);
    this.inner.pushUsedBatch(elements);
    this.region.clearUsed(elements.map((e) => e.head), this.memory.atomicLoadU16(this.usedIdxAddress));
  }

  needsNotification(): boolean {
    return this.inner.needsNotification();
  }

  disableNotification(): void {
    this.inner.disableNotification();
  }

  enableNotification(): boolean {
    return this.inner.enableNotification() || this.resubmitLeft > 0;
  }

  reset(): void {
    this.inner.reset();
    this.resubmit = null;
    this.resubmitLeft = 0;
  }

  saveState(): QueueState {
    return this.inner.saveState();
  }
}

/**
 * A read-only view that yields the resubmitted heads as validated chains: a split queue whose
 * descriptor table is the guest's, and whose available ring — holding exactly those heads — and
 * used ring live in a private region placed above guest memory. Nothing is ever used through it.
 */
function resubmitQueue(memory: GuestMemory, layout: SplitQueueLayout, features: QueueFeatures, index: number, heads: readonly number[]): DeviceQueue {
  const top = memory.regions.reduce((end, r) => Math.max(end, r.start + r.size), 0);
  const base = Math.ceil(top / PAGE_SIZE) * PAGE_SIZE;
  const n = layout.size;
  const availBytes = 6 + 2 * n;
  const usedOffset = Math.ceil(availBytes / 4) * 4;
  const size = Math.ceil((usedOffset + 6 + 8 * n) / PAGE_SIZE) * PAGE_SIZE;
  const scratch = new GuestRegion({ guestAddress: base, size, buffer: new ArrayBuffer(size) });
  const view = new GuestMemory([...memory.regions, scratch]);
  heads.forEach((head, i) => view.writeU16(base + 4 + 2 * i, head));
  view.writeU16(base + 2, heads.length);
  const ring: SplitQueueLayout = { size: n, descTable: layout.descTable, availRing: base, usedRing: base + usedOffset };
  return new SplitDeviceQueue(ring, { memory: view, features: { ...features, eventIdx: false }, index });
}

function safeClose(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}
