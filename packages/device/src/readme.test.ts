import { GuestMemory } from '@virtio-ts/memory';
import { expect, it } from 'vitest';
import {
  DeviceCore,
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  VIRTIO_CONFIG_S_DRIVER_OK as OK,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_RNG,
  featureBit,
  type VirtioDevice,
} from './index.js';

it('README example runs', () => {
  const notified: number[] = [];
  const rng: VirtioDevice = {
    deviceType: VIRTIO_ID_RNG,
    deviceFeatures: featureBit(VIRTIO_F_VERSION_1),
    queueMaxSizes: [64],
    configSize: 0,
    configGeneration: 0,
    readConfig() {},
    writeConfig() {},
    activate() {},
    reset() {},
    queueNotify: (index) => notified.push(index),
  };
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  const core = new DeviceCore({ device: rng, memory, interrupt: { signalQueue() {}, signalConfig() {} } });
  core.writeStatus(A | D);
  core.writeDriverFeatureWord(1, 1);
  core.writeStatus(A | D | F);
  expect(core.status).toBe(A | D | F);
  core.setQueueSize(0, 64);
  core.setQueueAddressHalf(0, 'desc', false, 0x1000);
  core.setQueueAddressHalf(0, 'driver', false, 0x2000);
  core.setQueueAddressHalf(0, 'device', false, 0x3000);
  core.enableQueue(0);
  expect(core.queue(0)?.enabled).toBe(true);
  core.writeStatus(A | D | F | OK);
  core.queueNotify(0xffff);
  expect(core.lastError?.code).toBe('INVALID_QUEUE');
  core.queueNotify(0);
  expect(notified).toEqual([0]);
});
