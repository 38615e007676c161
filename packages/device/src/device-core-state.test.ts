import fc from 'fast-check';
import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_DRIVER_OK as OK,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
} from './constants.js';
import { DeviceCore, type DeviceCoreState } from './device-core.js';
import { DeviceError } from './errors.js';
import { featureBits, featureWord, type Features } from './features.js';
import type { ActivationContext, VirtioDevice } from './virtio-device.js';

class CountingDevice implements VirtioDevice {
  readonly deviceType = 4;
  readonly deviceFeatures = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_RING_PACKED);
  readonly queueMaxSizes = [16, 16];
  readonly configSize = 0;
  readonly configGeneration = 0;
  context: ActivationContext | undefined;
  counter = 0;
  readConfig(): void {}
  writeConfig(): void {}
  activate(context: ActivationContext): void {
    this.context = context;
  }
  reset(): void {
    this.context = undefined;
  }
  queueNotify(): void {
    this.counter++;
  }
  saveState(): unknown {
    return { counter: this.counter };
  }
  restoreState(state: unknown): void {
    const counter = (state as { counter?: unknown } | null)?.counter;
    if (typeof counter !== 'number' || !Number.isSafeInteger(counter)) throw new Error('bad counter');
    this.counter = counter;
  }
}

const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
const interrupt = { signalQueue: () => undefined, signalConfig: () => undefined };

function liveCore(features: Features): { core: DeviceCore; device: CountingDevice } {
  const device = new CountingDevice();
  const core = new DeviceCore({ device, memory, interrupt });
  core.writeStatus(A | D);
  core.writeDriverFeatureWord(0, featureWord(features, 0));
  core.writeDriverFeatureWord(1, featureWord(features, 1));
  core.writeStatus(A | D | F);
  memory.fill(0x10000, 0x4000);
  core.setQueueSize(0, 8);
  core.setQueueAddressHalf(0, 'desc', false, 0x10000);
  core.setQueueAddressHalf(0, 'driver', false, 0x11000);
  core.setQueueAddressHalf(0, 'device', false, 0x12000);
  core.enableQueue(0);
  core.writeStatus(A | D | F | OK);
  core.queueNotify(0);
  return { core, device };
}

describe('DeviceCore snapshot', () => {
  for (const packed of [false, true]) {
    it(`round-trips through JSON and re-activates the device with its ${packed ? 'packed' : 'split'} queue`, () => {
      const features = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX) | (packed ? featureBits(VIRTIO_F_RING_PACKED) : 0n);
      const { core } = liveCore(features);
      const saved = JSON.parse(JSON.stringify(core.saveState())) as DeviceCoreState;
      const device = new CountingDevice();
      const restored = new DeviceCore({ device, memory, interrupt });
      restored.restoreState(saved);
      expect(restored.status).toBe(A | D | F | OK);
      expect(restored.negotiatedFeatures).toBe(features);
      expect(device.counter).toBe(1);
      expect(device.context?.queues[0]?.layout).toBe(packed ? 'packed' : 'split');
      expect(device.context?.queues[0]?.features.eventIdx).toBe(true);
      expect(device.context?.queues[1]).toBeNull();
      restored.queueNotify(0);
      expect(device.counter).toBe(2);
      expect(restored.saveState()).toEqual({ ...saved, device: { counter: 2 } });
    });
  }

  it('H16: refuses unreachable statuses, unacceptable features and rings that do not match the registers', () => {
    const { core } = liveCore(featureBits(VIRTIO_F_VERSION_1));
    const good = core.saveState();
    const variants: unknown[] = [
      null,
      { ...good, version: 2 },
      { ...good, status: A | D | OK }, // DRIVER_OK without FEATURES_OK
      { ...good, status: 0x30 | A },
      { ...good, driverFeatures: '10000000000000000' }, // 65 bits
      { ...good, driverFeatures: (featureBits(VIRTIO_F_VERSION_1, 40)).toString(16) }, // unoffered
      { ...good, driverFeatures: '0' }, // FEATURES_OK without VERSION_1
      { ...good, queues: good.queues.slice(0, 1) },
      { ...good, queues: [{ ...good.queues[0]!, size: 6 }, good.queues[1]] },
      { ...good, queues: [{ ...good.queues[0]!, descLo: 0x20000 }, good.queues[1]] },
      { ...good, queues: [{ ...good.queues[0]!, ring: null }, good.queues[1]] },
      { ...good, queues: [{ ...good.queues[0]!, ring: { ...(good.queues[0]!.ring as object), features: { eventIdx: true, indirect: false, inOrder: false } } }, good.queues[1]] },
      { ...good, device: { counter: 'x' } },
      { ...good, activated: true, status: A | D | F },
    ];
    for (const variant of variants) {
      const device = new CountingDevice();
      const restored = new DeviceCore({ device, memory, interrupt });
      let code: string | undefined;
      try {
        restored.restoreState(variant);
      } catch (error) {
        code = DeviceError.isInstance(error) ? error.code : 'OTHER';
      }
      expect(code, JSON.stringify(variant, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).toBe('INVALID_STATE');
      // All or nothing: the core is left reset.
      expect(restored.status).toBe(0);
      expect(device.context).toBeUndefined();
    }
  });

  it('H16 fuzz: any mutation of a saved state restores or throws INVALID_STATE, nothing else', () => {
    const { core } = liveCore(featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX));
    const good = JSON.parse(JSON.stringify(core.saveState())) as Record<string, unknown>;
    const paths: string[][] = [];
    const collect = (value: unknown, path: string[]) => {
      if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) collect(v, [...path, k]);
      else paths.push(path);
    };
    collect(good, []);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: paths.length - 1 }), fc.oneof(fc.integer(), fc.constant(-1), fc.constant(2 ** 53), fc.string(), fc.constant(null), fc.boolean(), fc.double())), { minLength: 1, maxLength: 4 }),
        (mutations) => {
          const state = structuredClone(good);
          for (const [i, value] of mutations) {
            const path = paths[i]!;
            let target = state;
            for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
            target[path[path.length - 1]!] = value;
          }
          const restored = new DeviceCore({ device: new CountingDevice(), memory, interrupt });
          try {
            restored.restoreState(state);
          } catch (error) {
            expect(DeviceError.isInstance(error) && error.code === 'INVALID_STATE').toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
