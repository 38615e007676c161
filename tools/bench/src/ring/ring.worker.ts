// One side of a cross-thread ring benchmark, in a worker thread. Doorbell (driver → device) and
// interrupt (device → driver) are Int32 words woken with Atomics.notify, as in the model guest.
// `ours` runs SplitDriverQueue / SplitDeviceQueue; `baseline` the same protocol on flat typed arrays.
import { parentPort, workerData } from 'node:worker_threads';
import { GuestMemory } from '@virtio-ts/memory';
import { PackedDeviceQueue, PackedDriverQueue, SplitDeviceQueue, SplitDriverQueue, packedQueueLayout, splitQueueLayout, type Segment } from '@virtio-ts/ring';
import { flatRing } from './baseline.js';

export interface RingWorkerData {
  readonly role: 'driver' | 'device';
  readonly layout: 'split' | 'packed';
  readonly impl: 'ours' | 'baseline';
  readonly memory: SharedArrayBuffer;
  /** Int32 words: 0 doorbell, 1 interrupt, 2 start barrier. */
  readonly signals: SharedArrayBuffer;
  readonly size: number;
  readonly segments: number;
  readonly requests: number;
  readonly dataAddress: number;
}

const DOORBELL = 0;
const INTERRUPT = 1;
const START = 2;
const WAIT_MS = 1000;

function ring(signals: Int32Array, word: number): void {
  Atomics.add(signals, word, 1);
  Atomics.notify(signals, word);
}

function oursDriver(d: RingWorkerData, signals: Int32Array): void {
  const memory = GuestMemory.create([{ guestAddress: 0, size: d.memory.byteLength, buffer: d.memory }]);
  const driver = new SplitDriverQueue<number>(splitQueueLayout(d.size, 0), { memory });
  const readable: Segment[] = [{ address: d.dataAddress, length: 64 }];
  const writable: Segment[] = [];
  for (let k = 1; k < d.segments; k++) writable.push({ address: d.dataAddress + 64 * k, length: 64 });
  let next = 0;
  let completed = 0;
  driver.disableCallback();
  while (completed < d.requests) {
    while (next < d.requests && driver.freeCount >= d.segments) driver.add(readable, writable, next++);
    if (driver.kickPrepare()) ring(signals, DOORBELL);
    let reaped = 0;
    while (driver.getUsed() !== null) reaped++;
    completed += reaped;
    if (reaped === 0 && completed < d.requests) {
      const value = Atomics.load(signals, INTERRUPT);
      if (driver.enableCallback()) Atomics.wait(signals, INTERRUPT, value, WAIT_MS);
      driver.disableCallback();
    }
  }
}

function oursDevice(d: RingWorkerData, signals: Int32Array): void {
  const memory = GuestMemory.create([{ guestAddress: 0, size: d.memory.byteLength, buffer: d.memory }]);
  const device = new SplitDeviceQueue(splitQueueLayout(d.size, 0), { memory });
  let completed = 0;
  device.disableNotification();
  while (completed < d.requests) {
    for (let chain = device.pop(); chain !== null; chain = device.pop()) {
      device.pushUsed(chain.head, chain.writableLength);
      completed++;
    }
    if (device.needsNotification()) ring(signals, INTERRUPT);
    if (completed >= d.requests) break;
    const value = Atomics.load(signals, DOORBELL);
    if (!device.enableNotification()) Atomics.wait(signals, DOORBELL, value, WAIT_MS);
    device.disableNotification();
  }
}

function baselineDriver(d: RingWorkerData, signals: Int32Array): void {
  const r = flatRing(d.memory, d.size);
  const { u16, u32 } = r;
  const mask = d.size - 1;
  const perRing = Math.floor(d.size / d.segments);
  let availIdx = 0;
  let lastUsed = 0;
  let kicked = 0;
  let head = 0;
  let next = 0;
  let completed = 0;
  let sink = 0;
  u16[r.availFlags] = 1; // NO_INTERRUPT while polling
  while (completed < d.requests) {
    while (next < d.requests && next - completed < perRing) {
      for (let k = 0; k < d.segments; k++) {
        const b = ((head + k) & mask) * 4;
        u32[b] = d.dataAddress + 64 * k;
        u32[b + 1] = 0;
        u32[b + 2] = 64;
        u32[b + 3] = (k < d.segments - 1 ? 1 : 0) | (k > 0 ? 2 : 0) | (((head + k + 1) & mask) << 16);
      }
      u16[r.availRing + (availIdx & mask)] = head;
      availIdx = (availIdx + 1) & 0xffff;
      Atomics.store(u16, r.availIdx, availIdx);
      head = (head + d.segments) & mask;
      next++;
    }
    if (kicked !== availIdx) {
      kicked = availIdx;
      if ((Atomics.load(u16, r.usedFlags) & 1) === 0) ring(signals, DOORBELL);
    }
    let reaped = 0;
    while (Atomics.load(u16, r.usedIdx) !== lastUsed) {
      const slot = r.usedRing32 + (lastUsed & mask) * 2;
      sink += u32[slot]! + u32[slot + 1]!;
      lastUsed = (lastUsed + 1) & 0xffff;
      reaped++;
    }
    completed += reaped;
    if (reaped === 0 && completed < d.requests) {
      const value = Atomics.load(signals, INTERRUPT);
      Atomics.store(u16, r.availFlags, 0);
      if (Atomics.load(u16, r.usedIdx) === lastUsed) Atomics.wait(signals, INTERRUPT, value, WAIT_MS);
      Atomics.store(u16, r.availFlags, 1);
    }
  }
  if (sink === -1) console.log(sink);
}

function baselineDevice(d: RingWorkerData, signals: Int32Array): void {
  const r = flatRing(d.memory, d.size);
  const { u16, u32 } = r;
  const mask = d.size - 1;
  let nextAvail = 0;
  let usedIdx = 0;
  let signalled = 0;
  let completed = 0;
  let sink = 0;
  u16[r.usedFlags] = 1; // NO_NOTIFY while polling
  while (completed < d.requests) {
    let availIdx = Atomics.load(u16, r.availIdx);
    while (availIdx !== nextAvail) {
      const h = u16[r.availRing + (nextAvail & mask)]!;
      nextAvail = (nextAvail + 1) & 0xffff;
      let i = h;
      let written = 0;
      for (let k = 0; k < d.segments; k++) {
        const b = i * 4;
        const flagsNext = u32[b + 3]!;
        sink += u32[b]! + u32[b + 1]!;
        if ((flagsNext & 2) !== 0) written += u32[b + 2]!;
        i = flagsNext >>> 16;
      }
      const slot = r.usedRing32 + (usedIdx & mask) * 2;
      u32[slot] = h;
      u32[slot + 1] = written;
      usedIdx = (usedIdx + 1) & 0xffff;
      Atomics.store(u16, r.usedIdx, usedIdx);
      completed++;
      if (availIdx === nextAvail) availIdx = Atomics.load(u16, r.availIdx);
    }
    if (signalled !== usedIdx) {
      signalled = usedIdx;
      if ((Atomics.load(u16, r.availFlags) & 1) === 0) ring(signals, INTERRUPT);
    }
    if (completed >= d.requests) break;
    const value = Atomics.load(signals, DOORBELL);
    Atomics.store(u16, r.usedFlags, 0);
    if (Atomics.load(u16, r.availIdx) === nextAvail) Atomics.wait(signals, DOORBELL, value, WAIT_MS);
    Atomics.store(u16, r.usedFlags, 1);
  }
  if (sink === -1) console.log(sink);
}

function packedOursDriver(d: RingWorkerData, signals: Int32Array): void {
  const memory = GuestMemory.create([{ guestAddress: 0, size: d.memory.byteLength, buffer: d.memory }]);
  const driver = new PackedDriverQueue<number>(packedQueueLayout(d.size, 0), { memory });
  const readable: Segment[] = [{ address: d.dataAddress, length: 64 }];
  const writable: Segment[] = [];
  for (let k = 1; k < d.segments; k++) writable.push({ address: d.dataAddress + 64 * k, length: 64 });
  let next = 0;
  let completed = 0;
  driver.disableCallback();
  while (completed < d.requests) {
    while (next < d.requests && driver.freeCount >= d.segments) driver.add(readable, writable, next++);
    if (driver.kickPrepare()) ring(signals, DOORBELL);
    let reaped = 0;
    while (driver.getUsed() !== null) reaped++;
    completed += reaped;
    if (reaped === 0 && completed < d.requests) {
      const value = Atomics.load(signals, INTERRUPT);
      if (driver.enableCallback()) Atomics.wait(signals, INTERRUPT, value, WAIT_MS);
      driver.disableCallback();
    }
  }
}

function packedOursDevice(d: RingWorkerData, signals: Int32Array): void {
  const memory = GuestMemory.create([{ guestAddress: 0, size: d.memory.byteLength, buffer: d.memory }]);
  const device = new PackedDeviceQueue(packedQueueLayout(d.size, 0), { memory });
  let completed = 0;
  device.disableNotification();
  while (completed < d.requests) {
    for (let chain = device.pop(); chain !== null; chain = device.pop()) {
      device.pushUsed(chain.head, chain.writableLength);
      completed++;
    }
    if (device.needsNotification()) ring(signals, INTERRUPT);
    if (completed >= d.requests) break;
    const value = Atomics.load(signals, DOORBELL);
    if (!device.enableNotification()) Atomics.wait(signals, DOORBELL, value, WAIT_MS);
    device.disableNotification();
  }
}

const AVAIL = 1 << 7;
const USED = 1 << 15;

/** Packed baseline: flat typed arrays; suppression words (1 = disable) after the descriptor ring. */
function packedBaselineDriver(d: RingWorkerData, signals: Int32Array): void {
  const u16 = new Uint16Array(d.memory);
  const u32 = new Uint32Array(d.memory);
  const deviceFlags = d.size * 8;
  const driverFlags = d.size * 8 + 2;
  const perRing = Math.floor(d.size / d.segments);
  let availPos = 0;
  let availWrap = 1;
  let usedPos = 0;
  let usedWrap = 1;
  let next = 0;
  let completed = 0;
  let kicked = 0;
  let sink = 0;
  u16[driverFlags] = 1;
  while (completed < d.requests) {
    while (next < d.requests && next - completed < perRing) {
      const availFlags = availWrap === 1 ? AVAIL : USED;
      for (let k = d.segments - 1; k >= 0; k--) {
        const slot = availPos + k;
        u32[slot * 4] = d.dataAddress + 64 * k;
        u32[slot * 4 + 1] = 0;
        u32[slot * 4 + 2] = 64;
        u16[slot * 8 + 6] = next & 0xffff;
        const flags = availFlags | (k < d.segments - 1 ? 1 : 0) | (k > 0 ? 2 : 0);
        if (k === 0) Atomics.store(u16, slot * 8 + 7, flags);
        else u16[slot * 8 + 7] = flags;
      }
      availPos += d.segments;
      if (availPos >= d.size) {
        availPos -= d.size;
        availWrap ^= 1;
      }
      next++;
    }
    if (kicked !== next) {
      kicked = next;
      if (Atomics.load(u16, deviceFlags) === 0) ring(signals, DOORBELL);
    }
    let reaped = 0;
    while (((Atomics.load(u16, usedPos * 8 + 7) & USED) !== 0) === (usedWrap === 1) && completed + reaped < next) {
      sink += u16[usedPos * 8 + 6]! + u32[usedPos * 4 + 2]!;
      usedPos += d.segments;
      if (usedPos >= d.size) {
        usedPos -= d.size;
        usedWrap ^= 1;
      }
      reaped++;
    }
    completed += reaped;
    if (reaped === 0 && completed < d.requests) {
      const value = Atomics.load(signals, INTERRUPT);
      Atomics.store(u16, driverFlags, 0);
      if (((Atomics.load(u16, usedPos * 8 + 7) & USED) !== 0) !== (usedWrap === 1)) Atomics.wait(signals, INTERRUPT, value, WAIT_MS);
      Atomics.store(u16, driverFlags, 1);
    }
  }
  if (sink === -1) console.log(sink);
}

function packedBaselineDevice(d: RingWorkerData, signals: Int32Array): void {
  const u16 = new Uint16Array(d.memory);
  const u32 = new Uint32Array(d.memory);
  const deviceFlags = d.size * 8;
  const driverFlags = d.size * 8 + 2;
  let pos = 0;
  let wrap = 1;
  let completed = 0;
  let signalled = 0;
  let sink = 0;
  u16[deviceFlags] = 1;
  const available = (): boolean => {
    const f = Atomics.load(u16, pos * 8 + 7);
    return ((f & AVAIL) !== 0) === (wrap === 1) && ((f & USED) !== 0) !== (wrap === 1);
  };
  while (completed < d.requests) {
    while (available()) {
      let slot = pos;
      let flags = u16[slot * 8 + 7]!;
      let written = 0;
      for (;;) {
        sink += u32[slot * 4]! + u32[slot * 4 + 1]!;
        if ((flags & 2) !== 0) written += u32[slot * 4 + 2]!;
        if ((flags & 1) === 0) break;
        slot++;
        flags = u16[slot * 8 + 7]!;
      }
      u16[pos * 8 + 6] = u16[slot * 8 + 6]!;
      u32[pos * 4 + 2] = written;
      Atomics.store(u16, pos * 8 + 7, wrap === 1 ? AVAIL | USED : 0);
      pos += d.segments;
      if (pos >= d.size) {
        pos -= d.size;
        wrap ^= 1;
      }
      completed++;
    }
    if (signalled !== completed) {
      signalled = completed;
      if (Atomics.load(u16, driverFlags) === 0) ring(signals, INTERRUPT);
    }
    if (completed >= d.requests) break;
    const value = Atomics.load(signals, DOORBELL);
    Atomics.store(u16, deviceFlags, 0);
    if (!available()) Atomics.wait(signals, DOORBELL, value, WAIT_MS);
    Atomics.store(u16, deviceFlags, 1);
  }
  if (sink === -1) console.log(sink);
}

const roles = {
  split: { ours: { driver: oursDriver, device: oursDevice }, baseline: { driver: baselineDriver, device: baselineDevice } },
  packed: { ours: { driver: packedOursDriver, device: packedOursDevice }, baseline: { driver: packedBaselineDriver, device: packedBaselineDevice } },
};

const data = workerData as RingWorkerData;
const signals = new Int32Array(data.signals);
parentPort!.postMessage('ready');
Atomics.wait(signals, START, 0);
roles[data.layout][data.impl][data.role](data, signals);
parentPort!.postMessage('done');
