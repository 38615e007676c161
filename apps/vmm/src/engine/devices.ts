import { BlkDevice, NetDevice, RngDevice, ScsiDevice, type NetBackend } from '@virtio-ts/backends';
import type { VirtioDevice } from '@virtio-ts/device';
import type { DeviceConfig, VmConfig } from '../config/schema.js';
import { formatSize } from '../config/size.js';
import { VmmError } from '../errors.js';
import { createConsoleDevice } from './console-device.js';
import type { TimedBlockDriver } from './timed-block-driver.js';

/** An opened disk (a blk device's or a scsi LUN's): the (timed) driver and where it came from. */
export interface OpenedDisk {
  readonly driver: TimedBlockDriver;
  readonly format: 'raw' | 'qcow2';
  /** Index in `config.devices` of the device it belongs to. */
  readonly device: number;
  /** scsi: the LUN's position in the device's list and its address. */
  readonly lun?: { readonly index: number; readonly target: number; readonly lun: number };
  /** The image file, or undefined for a memory-backed disk. */
  readonly path?: string;
}

/** A short serial for a disk of `bytes` (at most 20 characters, alphanumeric). */
function serialOf(prefix: string, bytes: number): string {
  return `${prefix}-${formatSize(bytes).replace(/[^0-9A-Za-z]/g, '')}`.slice(0, 20);
}

/** What a device is built on: its opened disks (blk: one; scsi: one per LUN, in order) or its net back-end. */
export interface DeviceBacking {
  readonly disks: readonly OpenedDisk[];
  readonly net?: NetBackend;
}

/** Builds the device model for one device config. */
export function createDevice(config: VmConfig, device: DeviceConfig, { disks, net }: DeviceBacking): VirtioDevice {
  const ring = { packed: config.ring === 'packed', eventIdx: config.eventIdx, indirect: config.indirect };
  const disk = disks[0];
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
        serial: serialOf('vmm-blk', disk.driver.length),
      });
    case 'scsi':
      if (disks.length !== device.luns.length) throw new VmmError('INTERNAL', 'scsi device without its opened disks');
      return new ScsiDevice({
        ...ring,
        numQueues: device.queues,
        queueSize: config.queueSize,
        luns: device.luns.map((l, i) => ({
          target: l.target,
          lun: l.lun,
          unit: {
            driver: disks[i]!.driver,
            readOnly: l.readOnly,
            vendor: 'VIRTIOTS',
            product: 'vmm scsi disk',
            serial: serialOf(`vmm-scsi${i}`, disks[i]!.driver.length),
            // writethrough: the write cache is off (caching page WCE 0) and every write is flushed.
            writeCache: l.cache !== 'writethrough',
          },
        })),
      });
    case 'net':
      if (net === undefined) throw new VmmError('INTERNAL', 'net device without a back-end');
      return new NetDevice({ ...ring, backend: net, mac: device.mac, queuePairs: device.queues, queueSize: config.queueSize, mtu: device.mtu });
    case 'rng':
      return new RngDevice({ ...ring, queueSize: config.queueSize });
    case 'console':
      return createConsoleDevice(ring, config.queueSize, device.backend);
  }
}

/** One line describing a device for the report. */
export function describeDevice(device: DeviceConfig, disks: readonly OpenedDisk[]): string {
  const disk = disks[0];
  switch (device.type) {
    case 'net':
      return `virtio-net ${device.mac} on ${device.backend} (guest ${device.ip}, mtu ${device.mtu}, ${device.queues} queue pair${device.queues > 1 ? 's' : ''})`;
    case 'scsi': {
      const luns = device.luns.map((l, i) => {
        const d = disks[i];
        return `${l.target}:${l.lun} ${d?.path ?? 'memory'} (${l.format}${d === undefined ? '' : `, ${formatSize(d.driver.length)}`}, cache=${l.cache}${l.readOnly ? ', read-only' : ''})`;
      });
      return `virtio-scsi, ${device.queues} request queue${device.queues > 1 ? 's' : ''}: ${luns.join('; ')}`;
    }
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
