import { BlkDevice, RngDevice } from '@virtio-ts/backends';
import type { VirtioDevice } from '@virtio-ts/device';
import type { DeviceConfig, VmConfig } from '../config/schema.js';
import { formatSize } from '../config/size.js';
import { VmmError } from '../errors.js';
import { createConsoleDevice } from './console-device.js';
import type { TimedBlockDriver } from './timed-block-driver.js';

/** A blk device's opened disk: the (timed) driver and where it came from. */
export interface OpenedDisk {
  readonly driver: TimedBlockDriver;
  readonly format: 'raw' | 'qcow2';
  /** The image file, or undefined for a memory-backed disk. */
  readonly path?: string;
}

/** Builds the device model for one device config. */
export function createDevice(config: VmConfig, device: DeviceConfig, disk: OpenedDisk | undefined): VirtioDevice {
  const ring = { packed: config.ring === 'packed', eventIdx: config.eventIdx, indirect: config.indirect };
  switch (device.type) {
    case 'blk':
      if (disk === undefined) throw new VmmError('INTERNAL', 'blk device without an opened disk');
      return new BlkDevice({
        ...ring,
        driver: disk.driver,
        readOnly: device.readOnly,
        numQueues: device.queues,
        queueSize: config.queueSize,
        // writethrough: the guest sees no volatile cache (WCE 0) and every write is flushed.
        writeback: device.cache !== 'writethrough',
        serial: `vmm-blk-${formatSize(disk.driver.length).replace(/[^0-9A-Za-z]/g, '')}`.slice(0, 20),
      });
    case 'rng':
      return new RngDevice({ ...ring, queueSize: config.queueSize });
    case 'console':
      return createConsoleDevice(ring, config.queueSize, device.backend);
  }
}

/** One line describing a device for the report. */
export function describeDevice(device: DeviceConfig, disk: OpenedDisk | undefined): string {
  switch (device.type) {
    case 'blk': {
      const where = disk?.path ?? 'memory';
      const size = disk === undefined ? '' : `, ${formatSize(disk.driver.length)}`;
      return `virtio-blk ${where} (${device.format}${size}, cache=${device.cache}, ${device.queues} queue${device.queues > 1 ? 's' : ''}${device.readOnly ? ', read-only' : ''})`;
    }
    case 'rng':
      return 'virtio-rng (host entropy: WebCrypto getRandomValues)';
    case 'console':
      return device.backend === undefined || device.backend === 'echo'
        ? 'virtio-console (echo backend: every byte the guest sends comes back)'
        : `virtio-console on ${device.backend}`;
  }
}
