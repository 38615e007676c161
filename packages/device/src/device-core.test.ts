import { GuestMemory } from '@virtio-ts/memory';
import type { DeviceQueue, QueueOptions } from '@virtio-ts/ring';
import { describe, expect, it } from 'vitest';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_DRIVER_OK as OK,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from './constants.js';
import { DeviceCore } from './device-core.js';
import { featureBits, featureWord, type Features } from './features.js';
import type { QueueFactory, QueueRing } from './queue-factory.js';
import type { ActivationContext, VirtioDevice } from './virtio-device.js';

const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);

function fakeQueue(ring: QueueRing, options: QueueOptions, log: string[]): DeviceQueue {
  return {
    layout: ring.layout,
    size: ring.ring.size,
    features: { eventIdx: false, indirect: false, inOrder: false, ...options.features },
    broken: false,
    inFlight: 0,
    pop: () => null,
    hasAvailable: () => false,
    pushUsed: () => undefined,
    pushUsedBatch: () => undefined,
    needsNotification: () => true,
    disableNotification: () => undefined,
    enableNotification: () => false,
    reset: () => log.push(`queue ${options.index} reset`),
    saveState: () => {
      throw new Error('not needed');
    },
  };
}

class TestDevice implements VirtioDevice {
  readonly deviceType = 42;
  deviceFeatures: Features = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_F_IN_ORDER, VIRTIO_F_RING_RESET);
  readonly queueMaxSizes = [8, 16];
  readonly configSize = 8;
  configGeneration = 0;
  readonly config = new Uint8Array(8);
  context: ActivationContext | undefined;
  notified: number[] = [];
  throwOnActivate = false;
  readConfig(offset: number, data: Uint8Array): void {
    data.set(this.config.subarray(offset, offset + data.length));
  }
  writeConfig(offset: number, data: Uint8Array): void {
    this.config.set(data, offset);
  }
  activate(context: ActivationContext): void {
    if (this.throwOnActivate) throw new Error('activate failed');
    this.context = context;
  }
  reset(): void {
    this.context = undefined;
  }
  queueNotify(index: number): void {
    this.notified.push(index);
  }
}

function setup(device = new TestDevice()) {
  const log: string[] = [];
  const built: { ring: QueueRing; options: QueueOptions }[] = [];
  const factory: QueueFactory = {
    createDeviceQueue(ring, options) {
      built.push({ ring, options });
      return fakeQueue(ring, options, log);
    },
    createDriverQueue() {
      throw new Error('device side only');
    },
  };
  const interrupts: string[] = [];
  const core = new DeviceCore({
    device,
    memory,
    queueFactory: factory,
    interrupt: { signalQueue: (i) => interrupts.push(`queue ${i}`), signalConfig: () => interrupts.push('config') },
  });
  return { core, device, log, built, interrupts };
}

function negotiate(core: DeviceCore, features: Features): void {
  core.writeStatus(A);
  core.writeStatus(A | D);
  core.writeDriverFeatureWord(0, featureWord(features, 0));
  core.writeDriverFeatureWord(1, featureWord(features, 1));
  core.writeStatus(A | D | F);
}

function program(core: DeviceCore, index: number, base: number, size: number): void {
  core.setQueueSize(index, size);
  core.setQueueAddressHalf(index, 'desc', false, base);
  core.setQueueAddressHalf(index, 'driver', false, base + 0x1000);
  core.setQueueAddressHalf(index, 'device', false, base + 0x2000);
}

describe('DeviceCore', () => {
  it('3.1.1: negotiated ring features reach the queues, and DRIVER_OK activates the device with them', () => {
    const { core, device, built } = setup();
    const features = featureBits(VIRTIO_F_VERSION_1, VIRTIO_F_RING_PACKED, VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_IN_ORDER);
    negotiate(core, features);
    expect(core.status).toBe(A | D | F);
    program(core, 0, 0x10000, 8);
    core.enableQueue(0);
    core.writeStatus(A | D | F | OK);
    expect(built).toHaveLength(1);
    expect(built[0]!.ring.layout).toBe('packed');
    expect(built[0]!.options.features).toEqual({ eventIdx: true, indirect: false, inOrder: true });
    expect(device.context?.features).toBe(features);
    expect(device.context?.queues.map((q) => q?.layout ?? null)).toEqual(['packed', null]);
    core.queueNotify(0);
    expect(device.notified).toEqual([0]);
  });

  it('2.1.2 / H4: a queue enabled over unmapped memory sets DEVICE_NEEDS_RESET; nothing throws', () => {
    const { core, built } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    program(core, 0, 0xff000, 8); // the used ring lands past the end of RAM
    core.enableQueue(0);
    expect(core.status & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_NEEDS_RESET);
    expect(core.lastError?.code).toBe('QUEUE_ADDRESS_INVALID');
    expect(built).toHaveLength(0);
    // High halves past 2^53 are not valid guest addresses.
    const second = setup();
    negotiate(second.core, featureBits(VIRTIO_F_VERSION_1));
    program(second.core, 1, 0x10000, 16);
    second.core.setQueueAddressHalf(1, 'desc', true, 0xffff_ffff);
    second.core.enableQueue(1);
    expect(second.core.lastError?.code).toBe('QUEUE_ADDRESS_INVALID');
  });

  it('2.7 / 4.1.4.3.1: a split queue size that is not a power of two, 0, or above the maximum is not taken and sets NEEDS_RESET', () => {
    for (const size of [0, 6, 32]) {
      const { core } = setup();
      negotiate(core, featureBits(VIRTIO_F_VERSION_1));
      program(core, 0, 0x10000, size);
      expect(core.lastError?.code).toBe('INVALID_QUEUE_SIZE');
      // "the device MUST present either a value of 0 or a power of 2 in queue_size"
      expect(core.queue(0)?.size).toBe(8);
      expect(core.status & VIRTIO_CONFIG_S_NEEDS_RESET).not.toBe(0);
      core.enableQueue(0);
      expect(core.queue(0)?.enabled).toBe(false);
    }
  });

  it('2.8: a packed queue takes any size from 1 to the maximum', () => {
    const { core, built } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1, VIRTIO_F_RING_PACKED));
    program(core, 0, 0x10000, 6);
    core.enableQueue(0);
    expect(core.errorCount).toBe(0);
    expect(built[0]?.ring.ring.size).toBe(6);
  });

  it('H1: notifications of 0xFFFF, of num_queues and of a queue never enabled are dropped and recorded', () => {
    const { core, device } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    program(core, 0, 0x10000, 8);
    core.enableQueue(0);
    core.queueNotify(0); // before DRIVER_OK
    core.writeStatus(A | D | F | OK);
    core.queueNotify(0xffff);
    core.queueNotify(2);
    core.queueNotify(1);
    core.queueNotify(-1);
    expect(device.notified).toEqual([]);
    expect(core.errorCount).toBe(5);
  });

  it('2.4: writing 0 resets from any state and releases the queues', () => {
    const { core, device, log, interrupts } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    program(core, 0, 0x10000, 8);
    core.enableQueue(0);
    core.writeStatus(A | D | F | OK);
    const interrupt = device.context!.interrupt;
    core.writeStatus(0);
    expect(core.status).toBe(0);
    expect(device.context).toBeUndefined();
    expect(log).toEqual(['queue 0 reset']);
    expect(core.queue(0)).toMatchObject({ enabled: false, size: 8, descLo: 0, queue: null });
    expect(core.driverFeatures).toBe(0n);
    // A device that kept its old Interrupt cannot signal through it after the reset.
    interrupt.signalQueue(0);
    interrupt.signalConfig();
    expect(interrupts).toEqual([]);
  });

  it('2.1.2: "If DRIVER_OK is set, after it sets DEVICE_NEEDS_RESET, the device MUST send a device configuration change notification"', () => {
    const { core, device, interrupts } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    core.writeStatus(A | D | F | OK);
    device.context!.markNeedsReset('broken ring');
    expect(interrupts).toEqual(['config']);
    expect(core.status).toBe(A | D | F | OK | VIRTIO_CONFIG_S_NEEDS_RESET);
    // Signals after NEEDS_RESET still reach the driver (it must learn of the state), but notifies stop.
    program(core, 1, 0x10000, 16);
    core.queueNotify(1);
    expect(device.notified).toEqual([]);
  });

  it('a device that throws in activate is marked NEEDS_RESET instead of throwing into the transport', () => {
    const device = new TestDevice();
    device.throwOnActivate = true;
    const { core, interrupts } = setup(device);
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    expect(() => core.writeStatus(A | D | F | OK)).not.toThrow();
    expect(core.status & VIRTIO_CONFIG_S_NEEDS_RESET).not.toBe(0);
    expect(core.lastError?.code).toBe('DEVICE_FAILURE');
    expect(interrupts).toEqual(['config']);
  });

  it('2.5.1: config_generation changes when the device configuration changed, and only then', () => {
    const { core, device } = setup();
    const g0 = core.configGeneration;
    const out = new Uint8Array(4);
    core.readConfig(0, out);
    expect(core.configGeneration).toBe(g0);
    device.config[0] = 7;
    device.configGeneration++;
    core.readConfig(0, out);
    expect(out[0]).toBe(7);
    const g1 = core.configGeneration;
    expect(g1).not.toBe(g0);
    expect(core.configGeneration).toBe(g1);
  });

  it('config accesses past configSize read zeros and are recorded, never reaching the device', () => {
    const { core, device } = setup();
    device.config.fill(0xaa);
    const out = new Uint8Array(4).fill(0xff);
    core.readConfig(6, out);
    expect([...out]).toEqual([0, 0, 0, 0]);
    core.writeConfig(8, new Uint8Array([1]));
    core.writeConfig(-1, new Uint8Array([1]));
    expect(core.errorCount).toBe(3);
    expect(core.lastError?.code).toBe('CONFIG_OUT_OF_RANGE');
  });

  it('2.6.1: queue reset is offered only when the device implements it', () => {
    const { core } = setup();
    expect(core.offeredFeatures & featureBits(VIRTIO_F_RING_RESET)).toBe(0n);
    negotiate(core, featureBits(VIRTIO_F_VERSION_1, VIRTIO_F_RING_RESET));
    expect(core.status & F).toBe(0);
  });

  it('2.6.1: a queue reset with VIRTIO_F_RING_RESET stops the queue and allows re-enabling it', () => {
    const device = new TestDevice();
    const events: string[] = [];
    Object.assign(device, {
      queueReset: (i: number) => events.push(`reset ${i}`),
      queueEnable: (i: number, q: DeviceQueue) => events.push(`enable ${i} ${q.size}`),
    });
    const { core, log } = setup(device);
    negotiate(core, featureBits(VIRTIO_F_VERSION_1, VIRTIO_F_RING_RESET));
    program(core, 0, 0x10000, 8);
    core.enableQueue(0);
    core.writeStatus(A | D | F | OK);
    core.resetQueue(0);
    expect(core.queue(0)?.enabled).toBe(false);
    program(core, 0, 0x20000, 4);
    core.enableQueue(0);
    expect(events).toEqual(['reset 0', 'enable 0 4']);
    expect(log).toEqual(['queue 0 reset']);
  });

  it('refuses a device that does not offer VIRTIO_F_VERSION_1 (modern only)', () => {
    const device = new TestDevice();
    device.deviceFeatures = 0n;
    expect(() => setup(device)).toThrow(/VERSION_1/);
  });
});

describe('DeviceCore queue validation', () => {
  it('2.6: queue areas that overlap each other are refused with NEEDS_RESET', () => {
    const { core } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    core.setQueueSize(0, 8);
    core.setQueueAddressHalf(0, 'desc', false, 0x10000);
    core.setQueueAddressHalf(0, 'driver', false, 0x10040); // inside the 128-byte descriptor table
    core.setQueueAddressHalf(0, 'device', false, 0x12000);
    core.enableQueue(0);
    expect(core.lastError?.code).toBe('QUEUE_ADDRESS_INVALID');
    expect(core.status & VIRTIO_CONFIG_S_NEEDS_RESET).not.toBe(0);
  });

  it('2.7.5: a descriptor table that is not 16-byte aligned is refused', () => {
    const { core } = setup();
    negotiate(core, featureBits(VIRTIO_F_VERSION_1));
    program(core, 0, 0x10008, 8);
    core.enableQueue(0);
    expect(core.lastError?.message).toMatch(/aligned/);
  });
});
