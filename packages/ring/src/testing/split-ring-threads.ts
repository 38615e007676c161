import { GuestMemory } from '@virtio-ts/memory';
import type { QueueFeatures, SplitQueueLayout } from '../types.js';
import { SplitDeviceQueue } from '../split/device-queue.js';
import { SplitDriverQueue } from '../split/driver-queue.js';

/** Index of the doorbell word (driver → device, like an ioeventfd) in `signals`. */
export const DOORBELL = 0;
/** Index of the interrupt word (device → driver, like an irqfd) in `signals`. */
export const INTERRUPT = 1;

/**
 * Everything one side of a cross-thread split ring needs; plain data that `postMessage` /
 * `workerData` can carry (the SharedArrayBuffers are shared, not copied).
 */
export interface SplitThreadConfig {
  /** Backing of the one guest memory region at address 0. */
  readonly memoryBuffer: SharedArrayBuffer;
  readonly layout: SplitQueueLayout;
  readonly features: QueueFeatures;
  readonly indirectArea?: { readonly address: number; readonly maxDescriptors: number };
  /** Int32Array words: DOORBELL, INTERRUPT. */
  readonly signals: SharedArrayBuffer;
  /** Requests to run. */
  readonly requests: number;
  /** Segments per request: `segments - 1` readable then one writable (>= 2). */
  readonly segments: number;
  /** Guest address of the data area: `size` slots of 16 bytes * segments. */
  readonly dataAddress: number;
  /** Milliseconds to wait for a doorbell or an interrupt before counting a lost wakeup. */
  readonly waitTimeoutMs?: number;
}

/** What a side reports when it finishes. */
export interface SplitThreadResult {
  readonly completed: number;
  /** Waits that ended by timeout (a lost notification if non-zero). */
  readonly timeouts: number;
  /** Times the side slept. */
  readonly sleeps: number;
  /** Driver only: responses with the wrong content, length or token, or seen twice. */
  readonly mismatches: number;
  readonly milliseconds: number;
}

const MAGIC = 0x7669_7274;

function memoryOf(config: SplitThreadConfig): GuestMemory {
  return GuestMemory.create([{ guestAddress: 0, size: config.memoryBuffer.byteLength, buffer: config.memoryBuffer }]);
}

/**
 * The driver role: keeps the ring full of requests (readable segments carrying the request
 * number, one writable segment for the answer), kicks when `kickPrepare()` says so, reaps and
 * checks every answer, and sleeps on the interrupt word with the enable-then-recheck protocol.
 */
export function runSplitDriverThread(config: SplitThreadConfig): SplitThreadResult {
  const started = Date.now();
  const memory = memoryOf(config);
  const size = config.layout.size;
  const driver = new SplitDriverQueue<number>(config.layout, { memory, features: config.features, indirectArea: config.indirectArea });
  const signals = new Int32Array(config.signals);
  const timeout = config.waitTimeoutMs ?? 5000;
  const segments = config.segments;
  const slotBytes = 16 * segments;
  const freeSlots: number[] = [];
  for (let s = size - 1; s >= 0; s--) freeSlots.push(s);
  const seen = new Uint8Array(config.requests);
  const readable: { address: number; length: number }[] = [];
  let next = 0;
  let completed = 0;
  let mismatches = 0;
  let timeouts = 0;
  let sleeps = 0;
  const needed = config.features.indirect && config.indirectArea !== undefined ? 1 : segments;
  driver.disableCallback();
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
      driver.add(readable, [{ address: answer, length: 16 }], next * 65536 + slot);
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
 * The device role: pops every chain, checks the readable segments, writes `[MAGIC, 2n + 1]` into
 * the writable one, pushes it used, interrupts when `needsNotification()` says so, and sleeps on
 * the doorbell word with the enable-then-recheck protocol.
 */
export function runSplitDeviceThread(config: SplitThreadConfig): SplitThreadResult {
  const started = Date.now();
  const memory = memoryOf(config);
  const device = new SplitDeviceQueue(config.layout, { memory, features: config.features });
  const signals = new Int32Array(config.signals);
  const timeout = config.waitTimeoutMs ?? 5000;
  let completed = 0;
  let timeouts = 0;
  let sleeps = 0;
  let mismatches = 0;
  device.disableNotification();
  while (completed < config.requests) {
    for (let chain = device.pop(); chain !== null; chain = device.pop()) {
      const request = memory.readU32(chain.readable[0]!.address);
      for (let k = 1; k < chain.readable.length; k++) if (memory.readU32(chain.readable[k]!.address) !== request) mismatches++;
      const answer = chain.writable[0]!.address;
      memory.writeU32(answer + 4, request * 2 + 1);
      memory.writeU32(answer, MAGIC);
      device.pushUsed(chain.head, 8);
      completed++;
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
