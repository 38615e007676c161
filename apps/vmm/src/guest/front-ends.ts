import type { VirtioTransport } from '@virtio-ts/device';
import { BlkDriver, RngDriver, ScsiDriver, type ScsiDisk } from '@virtio-ts/drivers';
import type { BootDevice, BootInfo } from '../engine/boot-info.js';
import { VmmError } from '../errors.js';
import type { GuestConsole, GuestDisk, GuestNet, GuestRng } from '../workloads/guest-devices.js';
import { attachNet } from './front-end-net.js';
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

/** A scsi LUN as the workloads see it (what sd makes of it): byte offsets over its logical blocks. */
function scsiDiskOf(disk: ScsiDisk): GuestDisk {
  const blocks = (offset: number, length: number): { lba: number; count: number } => {
    if (offset % disk.blockSize !== 0 || length % disk.blockSize !== 0) {
      throw new VmmError('GUEST_ERROR', `scsi ${disk.address.target}:${disk.address.lun}: ${length} bytes at ${offset} are not whole ${disk.blockSize}-byte blocks`);
    }
    return { lba: offset / disk.blockSize, count: length / disk.blockSize };
  };
  return {
    capacity: disk.blocks * disk.blockSize,
    readOnly: disk.readOnly,
    read: (offset, length) => {
      const { lba, count } = blocks(offset, length);
      return disk.read(lba, count);
    },
    write: (offset, data) => disk.write(blocks(offset, data.length).lba, data),
    flush: () => disk.flush(),
  };
}

/**
 * The guest kernel's device probe, second half: initialises the front-end driver of every device
 * this vCPU owns over its transport (VIRTIO 1.3 §3.1.1: reset, ACKNOWLEDGE, DRIVER, features,
 * FEATURES_OK, queues, DRIVER_OK). Ring features are what the device offers (the config's
 * toggles) intersected with what the drivers support.
 */
export async function bringUpDevices(kernel: GuestKernel, boot: BootInfo, transports: ReadonlyMap<BootDevice, VirtioTransport>): Promise<GuestDevices> {
  // Keyed by disk number (boot.disks): blk devices and scsi LUNs.
  const disks = new Map<number, GuestDisk>();
  const disksOf = (device: number) => boot.disks.flatMap((d, number) => (d.device === device ? [{ number, scsi: d.scsi }] : []));
  const consoles = new Map<number, GuestConsole>();
  const rngs = new Map<number, GuestRng>();
  // Keyed by net number (the net devices in config order).
  const nets = new Map<number, GuestNet>();
  for (const [device, transport] of transports) {
    switch (device.kind) {
      case 'blk': {
        const disk = diskOf(BlkDriver.init(transport, { queueSize: boot.queueSize }));
        for (const { number } of disksOf(device.index)) disks.set(number, disk);
        break;
      }
      case 'scsi': {
        const luns = disksOf(device.index);
        // Scan only the targets the config uses (REPORT LUNS on each, as the sd scan does).
        const scanTargets = Math.max(...luns.map((l) => l.scsi?.target ?? 0)) + 1;
        const hba = await ScsiDriver.open(transport, { queueSize: boot.queueSize, scanTargets });
        for (const { number, scsi } of luns) {
          const disk = scsi === undefined ? undefined : hba.disk(scsi.target, scsi.lun);
          if (disk === undefined) throw new VmmError('GUEST_ERROR', `scsi: the scan did not find LUN ${scsi?.target ?? '?'}:${scsi?.lun ?? '?'}`);
          disks.set(number, scsiDiskOf(disk));
        }
        break;
      }
      case 'rng': {
        const driver = RngDriver.init(transport, { queueSize: boot.queueSize });
        rngs.set(device.index, { read: (length) => driver.read(length) });
        break;
      }
      case 'console':
        consoles.set(device.index, await attachConsole(kernel, transport, boot));
        break;
      case 'net':
        nets.set(device.net?.number ?? -1, await attachNet(transport, boot, device));
        break;
      default:
        throw new VmmError('INTERNAL', `unknown device kind ${String(device.kind)}`);
    }
  }
  return { disks, consoles, rngs, nets };
}
