import { guestDisks, type VmConfig } from '../config/schema.js';

/** Size of the embedded default run's temporary qcow2 disk. */
export const DEFAULT_DISK_SIZE = 64 * 2 ** 20;

/**
 * Devices for a run that names none: the embedded default (a temporary qcow2 disk at `diskPath`,
 * rng and console).
 */
export function defaultDevices(diskPath: string): Record<string, unknown>[] {
  return [{ type: 'blk', path: diskPath, format: 'qcow2' }, { type: 'rng' }, { type: 'console' }];
}

/**
 * Workloads for a run that names none: for each writable disk (blk device or scsi LUN) `verify`
 * over 16 MiB then a short random read/write `bench`, for a read-only disk a short `randread`
 * bench; `console` and `rng` for those devices; in a multi-VM run, `ping` and `udp-echo` to the
 * next VM on every net device.
 */
export function defaultWorkloads(devices: VmConfig['devices'], inGroup = false): Record<string, unknown>[] {
  const workloads: Record<string, unknown>[] = [];
  let disk = 0;
  for (const { medium } of guestDisks({ devices })) {
    if (!medium.readOnly) {
      workloads.push({ type: 'verify', disk, size: '16M', bs: '64k', iodepth: 8 });
      workloads.push({ type: 'bench', disk, rw: 'randrw', bs: '4k', iodepth: 8, runtime: 1 });
    } else {
      workloads.push({ type: 'bench', disk, rw: 'randread', bs: '4k', iodepth: 8, runtime: 1 });
    }
    disk++;
  }
  if (devices.some((d) => d.type === 'console')) workloads.push({ type: 'console' });
  if (devices.some((d) => d.type === 'rng')) workloads.push({ type: 'rng', bytes: '64k' });
  if (inGroup) {
    const nets = devices.filter((d) => d.type === 'net').length;
    for (let net = 0; net < nets; net++) workloads.push({ type: 'ping', net }, { type: 'udp-echo', net });
  }
  return workloads;
}

/** Devices of a VM of a multi-VM run that names none: a net device on the in-process switch lan0. */
export function defaultGroupDevices(): Record<string, unknown>[] {
  return [{ type: 'net', backend: 'switch:lan0' }];
}
