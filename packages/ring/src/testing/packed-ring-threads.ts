import { GuestMemory } from '@virtio-ts/memory';
import { PackedDeviceQueue } from '../packed/device-queue.js';
import { PackedDriverQueue } from '../packed/driver-queue.js';
import type { PackedQueueLayout, QueueFeatures, Segment } from '../types.js';

/** Index of the doorbell word (driver → device, like an ioeventfd) in `signals`. */
const DOORBELL = 0;
/** Index of the interrupt word (device → driver, like an irqfd) in `signals`. */
const INTERRUPT = 1;

/**
 * Everything one side of a cross-thread packed ring needs: plain data that `workerData` can
 * carry (the SharedArrayBuffers are shared, not copied).
 */
export interface PackedThreadConfig {
  /** Backing of the one guest memory region at address 0. */
  readonly memoryBuffer: SharedArrayBuffer;
  readonly layout: PackedQueueLayout;
  readonly features: QueueFeatures;
  readonly indirectArea?: { readonly address: number; readonly maxDescriptors: number };
  /** Int32Array words: [0] doorbell, [1] interrupt. */
  readonly signals: SharedArrayBuffer;
  readonly requests: number;
  /** Segments per request: `segments - 1` readable then one writable (>= 2). */
  readonly segments: number;
  /** Guest address of the data area: `size` slots of `16 * segments` bytes. */
  readonly dataAddress: number;
  /** Device side, with IN_ORDER: complete in batches of up to this many (default 1). */
  readonly batch?: number;
  /** Milliseconds to wait for a doorbell or an interrupt before counting a lost wakeup. */
  readonly waitTimeoutMs?: number;
}

/** What a side reports when it finishes. */
export interface PackedThreadResult {
  readonly completed: number;
  /** Waits that ended by timeout (a lost notification if non-zero). */
  readonly timeouts: number;
  readonly sleeps: number;
  /** Responses (driver) or requests (device) with the wrong content, length or token, or seen twice. */
  readonly mismatches: number;
  readonly milliseconds: number;
}

const MAGIC = 0x7061_636b;

function memoryOf(config: PackedThreadConfig): GuestMemory {
  return GuestMemory.create([{ guestAddress: 0, size: config.memoryBuffer.byteLength, buffer: config.memoryBuffer }]);
}

/**
 * The driver role: keeps the ring full of requests (readable segments carrying the request
 * number, one writable segment for the answer), kicks when `kickPrepare()` says so, reaps and
 * checks every answer, and sleeps on the interrupt word with the enable-then-recheck protocol.
 */
export function runPackedDriverThread(config: PackedThreadConfig): PackedThreadResult {
  const started = Date.now();
  const memory = memoryOf(config);
  const size = config.layout.size;
  const driver = new PackedDriverQueue<number>(config.layout, {
    memory,
    features: config.features,
    ...(config.indirectArea !== undefined ? { indirectArea: config.indirectArea } : {}),
  });
  const signals = new Int32Array(config.signals);
  const timeout = config.waitTimeoutMs ?? 5000;
  const segments = config.segments;
  const slotBytes = 16 * segments;
  const freeSlots: number[] = [];
  for (let s = size - 1; s >= 0; s--) freeSlots.push(s);
  const seen = new Uint8Array(config.requests);
  const readable: Segment[] = [];
  const needed = config.features.indirect && config.indirectArea !== undefined && segments <= config.indirectArea.maxDescriptors ? 1 : segments;
  let next = 0;
  let completed = 0;
  let mismatches = 0;
  let timeouts = 0;
  let sleeps = 0;
  driver.disableCallback();
  // The device may start before this constructor zeroed the ring: tell it to look now.
  Atomics.add(signals, DOORBELL, 1);
  Atomics.notify(signals, DOORBELL);
  while (completed < config.requests) {
    while (next < config.requests && freeSlots.length > 0 && driver.freeCount >= needed) {
      const slot = freeSlots.pop()!;
      const base = config.dataAddress + slot * slotBytes;
      readable.length = 0;
      for (let k = 0; k < segments - 1; k++) {
        memory.writeU32(base + 16 * k, next);
        memory.writeU32(base + 16 * k + 4, k);
        readable.push({ address: base + 16 * k, length: 8 });
      }
      const answer = base + 16 * (segments - 1);
      memory.writeU32(answer, 0);
      driver.add(readable, [{ address: answer, length: 8 }], next * 65536 + slot);
      next++;
    }
    if (driver.kickPrepare()) {
      Atomics.add(signals, DOORBELL, 1);
      Atomics.notify(signals, DOORBELL);
    }
    let reaped = 0;
    for (let used = driver.getUsed(); used !== null; used = driver.getUsed()) {
      const request = Math.floor(used.token / 65536);
      const slot = used.token % 65536;
      const answer = config.dataAddress + slot * slotBytes + 16 * (segments - 1);
      if (used.length !== 8 || memory.readU32(answer) !== MAGIC || memory.readU32(answer + 4) !== request * 2 + 1 || seen[request] === 1) mismatches++;
      seen[request] = 1;
      freeSlots.push(slot);
      completed++;
      reaped++;
    }
    const canAdd = next < config.requests && freeSlots.length > 0 && driver.freeCount >= needed;
    if (reaped === 0 && !canAdd && completed < config.requests) {
      const value = Atomics.load(signals, INTERRUPT);
      if (driver.enableCallback()) {
        sleeps++;
        if (Atomics.wait(signals, INTERRUPT, value, timeout) === 'timed-out') timeouts++;
      }
      driver.disableCallback();
    }
  }
  return { completed, timeouts, sleeps, mismatches, milliseconds: Date.now() - started };
}

/**
 * The device role: pops every buffer, checks the readable segments, writes `[MAGIC, 2n + 1]`
 * into the writable one, returns it (in batches with IN_ORDER), interrupts when
 * `needsNotification()` says so, and sleeps on the doorbell word with the enable-then-recheck protocol.
 */
export function runPackedDeviceThread(config: PackedThreadConfig): PackedThreadResult {
  const started = Date.now();
  const memory = memoryOf(config);
  const device = new PackedDeviceQueue(config.layout, { memory, features: config.features });
  const signals = new Int32Array(config.signals);
  const timeout = config.waitTimeoutMs ?? 5000;
  const batchLimit = config.features.inOrder ? Math.max(1, config.batch ?? 1) : 1;
  const batch: { head: number; length: number }[] = [];
  let completed = 0;
  let timeouts = 0;
  let sleeps = 0;
  let mismatches = 0;
  device.disableNotification();
  while (completed < config.requests) {
    for (let chain = device.pop(); chain !== null; chain = device.pop()) {
      const request = memory.readU32(chain.readable[0]!.address);
      for (let k = 0; k < chain.readable.length; k++) {
        if (memory.readU32(chain.readable[k]!.address) !== request || memory.readU32(chain.readable[k]!.address + 4) !== k) mismatches++;
      }
      const answer = chain.writable[0]!.address;
      memory.writeU32(answer + 4, request * 2 + 1);
      memory.writeU32(answer, MAGIC);
      batch.push({ head: chain.head, length: 8 });
      if (batch.length >= batchLimit) {
        device.pushUsedBatch(batch);
        batch.length = 0;
      }
      completed++;
    }
    if (batch.length > 0) {
      device.pushUsedBatch(batch);
      batch.length = 0;
    }
    if (device.needsNotification()) {
      Atomics.add(signals, INTERRUPT, 1);
      Atomics.notify(signals, INTERRUPT);
    }
    if (completed >= config.requests) break;
    const value = Atomics.load(signals, DOORBELL);
    if (!device.enableNotification()) {
      sleeps++;
      if (Atomics.wait(signals, DOORBELL, value, timeout) === 'timed-out') timeouts++;
    }
    device.disableNotification();
  }
  return { completed, timeouts, sleeps, mismatches, milliseconds: Date.now() - started };
}
