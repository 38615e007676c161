import { GuestMemory } from '@virtio-ts/memory';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingError } from '../errors.js';
import { createPackedQueuePair } from '../testing/packed-queue-pair.js';
import type { PackedQueueState } from '../types.js';
import { PackedDeviceQueue } from './device-queue.js';
import { packedQueueLayout } from './layout.js';

// HOSTILE-INPUTS H16: a saved queue state is untrusted (a snapshot file, a migration stream).

const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);

function validState(): PackedQueueState {
  return {
    version: 1,
    layout: 'packed',
    ring: packedQueueLayout(8, 0x1000),
    features: { eventIdx: true, indirect: false, inOrder: false },
    nextAvail: 3,
    availWrapCounter: false,
    nextUsed: 6,
    usedWrapCounter: true,
    inFlight: [
      { id: 2, descriptorCount: 3 },
      { id: 7, descriptorCount: 2 },
    ],
    broken: false,
  };
}

function restoreCode(state: unknown): string {
  try {
    PackedDeviceQueue.restore(state, { memory });
    return 'ok';
  } catch (error) {
    if (!RingError.isInstance(error)) throw error;
    return error.code;
  }
}

describe('PackedDeviceQueue.restore (H16)', () => {
  it('accepts a consistent state and round-trips it', () => {
    const state = validState();
    expect(PackedDeviceQueue.restore(state, { memory }).saveState()).toEqual(state);
  });

  it.each<[string, (s: Record<string, unknown>) => void]>([
    ['an unknown version', (s) => (s.version = 2)],
    ['a split state', (s) => (s.layout = 'split')],
    ['size 0', (s) => (s.ring = { ...packedQueueLayout(8, 0x1000), size: 0 })],
    ['size 32769', (s) => (s.ring = { ...packedQueueLayout(8, 0x1000), size: 32769 })],
    ['a ring outside guest memory', (s) => (s.ring = packedQueueLayout(8, 1 << 20))],
    ['a misaligned ring', (s) => (s.ring = { ...packedQueueLayout(8, 0x1000), descRing: 0x1004 })],
    ['nextAvail = size', (s) => (s.nextAvail = 8)],
    ['nextUsed negative', (s) => (s.nextUsed = -1)],
    ['a fractional position', (s) => (s.nextAvail = 2.5)],
    ['a wrap counter that is not a boolean', (s) => (s.availWrapCounter = 1)],
    ['features that are not booleans', (s) => (s.features = { eventIdx: 'yes', indirect: false, inOrder: false })],
    ['an in-flight id >= size', (s) => (s.inFlight = [{ id: 8, descriptorCount: 5 }])],
    ['an in-flight id listed twice', (s) => (s.inFlight = [{ id: 2, descriptorCount: 3 }, { id: 2, descriptorCount: 2 }])],
    ['a slot count of 0', (s) => (s.inFlight = [{ id: 2, descriptorCount: 0 }, { id: 7, descriptorCount: 5 }])],
    ['slots that do not match the positions', (s) => (s.inFlight = [{ id: 2, descriptorCount: 4 }])],
    ['an in-flight list longer than the queue (2^31 entries, never walked)', (s) => void (s.inFlight = new Array<unknown>(2 ** 31))],
    ['positions more than a lap apart', (s) => ((s.nextAvail = 7), (s.nextUsed = 1), (s.availWrapCounter = false), (s.inFlight = []))],
    ['no in-flight list', (s) => delete s.inFlight],
  ])('rejects %s with INVALID_STATE', (_name, mutate) => {
    const state = validState() as unknown as Record<string, unknown>;
    mutate(state);
    expect(restoreCode(state)).toBe('INVALID_STATE');
  });

  it('the first needsNotification after restore notifies (completions the old queue may not have signalled) unless DISABLE', () => {
    const { driver, device, dataAddress, memory: m, layout } = createPackedQueuePair<number>({ size: 4, features: { eventIdx: true } });
    driver.add([{ address: dataAddress, length: 1 }], [], 1);
    device.pushUsed(device.pop()!.head, 0); // saved before needsNotification() ran
    const state = device.saveState();
    const restored = PackedDeviceQueue.restore(state, { memory: m });
    expect(restored.needsNotification()).toBe(true);
    expect(restored.needsNotification()).toBe(false);
    m.writeU32(layout.driverEvent, 1 << 16); // RING_EVENT_FLAGS_DISABLE
    expect(PackedDeviceQueue.restore(state, { memory: m }).needsNotification()).toBe(false);
  });

  it('rejects non-objects', () => {
    for (const value of [null, undefined, 42, 'state', []]) expect(restoreCode(value)).toBe('INVALID_STATE');
  });

  it('fuzzed states either restore to exactly themselves or fail with INVALID_STATE, never anything else', () => {
    const field = fc.oneof(fc.integer({ min: -2, max: 40 }), fc.boolean(), fc.constant(undefined), fc.double(), fc.string({ maxLength: 2 }));
    fc.assert(
      fc.property(
        fc.record({
          version: fc.oneof(fc.constant(1), field),
          size: fc.oneof(fc.integer({ min: 1, max: 12 }), field),
          nextAvail: field,
          nextUsed: field,
          availWrapCounter: fc.oneof(fc.boolean(), field),
          usedWrapCounter: fc.oneof(fc.boolean(), field),
          inOrder: fc.oneof(fc.boolean(), field),
          inFlight: fc.array(fc.record({ id: field, descriptorCount: field }), { maxLength: 14 }),
        }),
        (f) => {
          const state = {
            version: f.version,
            layout: 'packed',
            ring: { size: f.size, descRing: 0x1000, driverEvent: 0x2000, deviceEvent: 0x2004 },
            features: { eventIdx: false, indirect: true, inOrder: f.inOrder },
            nextAvail: f.nextAvail,
            availWrapCounter: f.availWrapCounter,
            nextUsed: f.nextUsed,
            usedWrapCounter: f.usedWrapCounter,
            inFlight: f.inFlight,
            broken: false,
          };
          const code = restoreCode(state);
          if (code === 'ok') {
            const restored = PackedDeviceQueue.restore(state, { memory }).saveState();
            if (state.features.inOrder === true) expect(restored).toEqual(state);
            else expect(restored).toEqual({ ...state, inFlight: [...f.inFlight].sort((a, b) => (a.id as number) - (b.id as number)) });
          } else {
            expect(code).toBe('INVALID_STATE');
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('a queue restored mid-flight finishes the work of the one it replaces', () => {
    const { driver, device, dataAddress, memory: m } = createPackedQueuePair<number>({ size: 6, features: { eventIdx: true, indirect: true } });
    for (let i = 0; i < 4; i++) driver.add([{ address: dataAddress, length: 4 }], [{ address: dataAddress + 64, length: 8 }, { address: dataAddress + 128, length: 8 }], i);
    const a = device.pop()!;
    const b = device.pop()!;
    device.pushUsed(a.head, 16);
    const restored = PackedDeviceQueue.restore(JSON.parse(JSON.stringify(device.saveState())) as PackedQueueState, { memory: m });
    expect(restored.features).toEqual({ eventIdx: true, indirect: true, inOrder: false });
    const c = restored.pop()!;
    const d = restored.pop()!;
    expect(restored.pop()).toBeNull();
    restored.pushUsed(d.head, 3);
    restored.pushUsed(b.head, 0);
    restored.pushUsed(c.head, 16);
    const got = [driver.getUsed(), driver.getUsed(), driver.getUsed(), driver.getUsed(), driver.getUsed()];
    expect(got).toEqual([{ token: 0, length: 16 }, { token: 3, length: 3 }, { token: 1, length: 0 }, { token: 2, length: 16 }, null]);
  });
});
