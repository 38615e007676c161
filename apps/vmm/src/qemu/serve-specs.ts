import path from 'node:path';
import { parseNetBackend } from '../config/net.js';
import { DEFAULT_NET_IP, type VmConfig } from '../config/schema.js';
import type { ServeDeviceSpec, ServeScsiLun } from '../serve/serve-options.js';

/** What the qemu engine does with each device of the VM config. */
export interface QemuDevicePlan {
  /** Devices served by the embedded `vmm serve`, each on its own socket in the run's directory. */
  readonly specs: readonly ServeDeviceSpec[];
  /** Memory-backed disks (`size=` without `path=`): an image file to create first. */
  readonly scratchImages: readonly { readonly path: string; readonly format: 'raw' | 'qcow2'; readonly size: number }[];
  /** Notes for stderr: devices or settings this engine cannot honour, and why. */
  readonly notes: readonly string[];
}

/**
 * Maps the VM config's devices onto `vmm serve` specs with sockets in `dir`: blk keeps its image,
 * format, read-only flag and queue count; scsi its queues and LUNs (target:lun, image, format,
 * read-only); a memory disk (blk or LUN) becomes a scratch image in `dir`; rng is served as is; net
 * on a TAP becomes `--net` with its MAC, queue pairs and MTU. What cannot be attached is left out
 * with a note: virtio-console (QEMU has no vhost-user-console front-end, so the guest's console is
 * QEMU's serial port) and net on a switch or stream back-end (vhost-user serves a TAP only).
 */
export function planQemuDevices(config: VmConfig, dir: string): QemuDevicePlan {
  const specs: ServeDeviceSpec[] = [];
  const scratchImages: { path: string; format: 'raw' | 'qcow2'; size: number }[] = [];
  const notes: string[] = [];
  const counters = { blk: 0, rng: 0, scsi: 0, net: 0 };
  const image = (medium: { path?: string; size?: number; format: 'raw' | 'qcow2' }, name: string): string => {
    if (medium.path !== undefined) return medium.path;
    const scratch = path.join(dir, `${name}.${medium.format}`);
    scratchImages.push({ path: scratch, format: medium.format, size: medium.size! });
    return scratch;
  };
  const cacheNote = (cache: string, where: string): void => {
    if (cache !== 'writeback') notes.push(`${where}: cache=${cache} is a model-engine setting; vmm serve runs the disk with a volatile write cache the guest flushes (writeback)`);
  };
  config.devices.forEach((device, index) => {
    const where = `devices.${index}`;
    if (device.type === 'blk') {
      const id = `blk${counters.blk++}`;
      cacheNote(device.cache, where);
      specs.push({
        kind: 'blk',
        id,
        path: image(device, id),
        format: device.format,
        socket: path.join(dir, `${id}.sock`),
        readOnly: device.readOnly,
        queues: device.queues,
        queueSize: config.queueSize,
        serial: id,
        packed: true,
      });
    } else if (device.type === 'scsi') {
      const id = `scsi${counters.scsi++}`;
      const luns: ServeScsiLun[] = device.luns.map((lun, i) => {
        cacheNote(lun.cache, `${where}.luns.${i}`);
        const name = `${id}-${lun.target}-${lun.lun}`;
        return { target: lun.target, lun: lun.lun, path: image(lun, name), format: lun.format, readOnly: lun.readOnly, serial: name };
      });
      specs.push({ kind: 'scsi', id, socket: path.join(dir, `${id}.sock`), queues: device.queues, queueSize: config.queueSize, packed: true, luns });
    } else if (device.type === 'rng') {
      const id = `rng${counters.rng++}`;
      specs.push({ kind: 'rng', id, socket: path.join(dir, `${id}.sock`), rate: 0 });
    } else if (device.type === 'net') {
      const backend = parseNetBackend(device.backend);
      if (typeof backend === 'string' || backend.kind !== 'tap') {
        notes.push(`${where}: net on ${device.backend} is not attached — vmm serve bridges vhost-user-net to a TAP only (backend tap:IFNAME)`);
        return;
      }
      const id = `net${counters.net++}`;
      if (device.ip !== DEFAULT_NET_IP) notes.push(`${where}: ip=${device.ip} is the model guest's address; a Linux guest configures its interface itself`);
      specs.push({ kind: 'net', id, tap: backend.ifname, socket: path.join(dir, `${id}.sock`), queues: device.queues, queueSize: 256, mac: device.mac, mtu: device.mtu, packed: true });
    } else {
      notes.push(`${where}: virtio-console is not attached — QEMU has no vhost-user-console front-end; the guest's console is QEMU's serial port on this terminal`);
    }
  });
  return { specs, scratchImages, notes };
}
