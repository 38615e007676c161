import type { VirtioTransport } from '@virtio-ts/device';
import { BlkDriver, RngDriver } from '@virtio-ts/drivers';
import type { BootDevice, BootInfo } from '../engine/boot-info.js';
import { VmmError } from '../errors.js';
import type { GuestConsole, GuestDisk, GuestRng } from '../workloads/guest-devices.js';
import { attachConsole } from './front-end-console.js';
import type { GuestKernel } from './guest-kernel.js';
import type { GuestDevices } from './vcpu-main.js';

const SECTOR = 512;

/** The blk front-end as the workloads see it: byte offsets over BlkDriver's sectors. */
function diskOf(driver: BlkDriver): GuestDisk {
  return {
    capacity: driver.limits.capacity * SECTOR,
    readOnly: driver.readOnly,
    read: (offset, length) => driver.read(offset / SECTOR, length),
    write: (offset, data) => driver.write(offset / SECTOR, data),
    flush: () => driver.flush(),
  };
}

/**
 * The guest kernel's device probe, second half: initialises the front-end driver of every device
 * this vCPU owns over its transport (VIRTIO 1.3 §3.1.1: reset, ACKNOWLEDGE, DRIVER, features,
 * FEATURES_OK, queues, DRIVER_OK). Ring features are what the device offers (the config's
 * toggles) intersected with what the drivers support.
 */
export async function bringUpDevices(kernel: GuestKernel, boot: BootInfo, transports: ReadonlyMap<BootDevice, VirtioTransport>): Promise<GuestDevices> {
  const disks = new Map<number, GuestDisk>();
  const consoles = new Map<number, GuestConsole>();
  const rngs = new Map<number, GuestRng>();
  for (const [device, transport] of transports) {
    switch (device.kind) {
      case 'blk':
        disks.set(device.index, diskOf(BlkDriver.init(transport, { queueSize: boot.queueSize })));
        break;
      case 'rng': {
        const driver = RngDriver.init(transport, { queueSize: boot.queueSize });
        rngs.set(device.index, { read: (length) => driver.read(length) });
        break;
      }
      case 'console':
        consoles.set(device.index, await attachConsole(kernel, transport, boot));
        break;
      default:
        throw new VmmError('INTERNAL', `unknown device kind ${String(device.kind)}`);
    }
  }
  return { disks, consoles, rngs };
}
