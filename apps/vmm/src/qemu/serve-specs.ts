import path from 'node:path';
import type { VmConfig } from '../config/schema.js';
import type { ServeDeviceSpec } from '../serve/serve-options.js';

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
 * format, read-only flag and queue count; a memory disk becomes a scratch image in `dir`; rng is
 * served as is. virtio-console cannot be attached: QEMU has no vhost-user-console front-end, so the
 * guest's console is QEMU's serial port (on the terminal) instead.
 */
export function planQemuDevices(config: VmConfig, dir: string): QemuDevicePlan {
  const specs: ServeDeviceSpec[] = [];
  const scratchImages: { path: string; format: 'raw' | 'qcow2'; size: number }[] = [];
  const notes: string[] = [];
  let blk = 0;
  let rng = 0;
  config.devices.forEach((device, index) => {
    if (device.type === 'blk') {
      const id = `blk${blk++}`;
      let image = device.path;
      if (image === undefined) {
        image = path.join(dir, `${id}.${device.format}`);
        scratchImages.push({ path: image, format: device.format, size: device.size! });
      }
      if (device.cache !== 'writeback') notes.push(`devices.${index}: cache=${device.cache} is a model-engine setting; vmm serve runs the disk with a volatile write cache the guest flushes (writeback)`);
      specs.push({
        kind: 'blk',
        id,
        path: image,
        format: device.format,
        socket: path.join(dir, `${id}.sock`),
        readOnly: device.readOnly,
        queues: device.queues,
        queueSize: config.queueSize,
        serial: id,
        packed: true,
      });
    } else if (device.type === 'rng') {
      const id = `rng${rng++}`;
      specs.push({ kind: 'rng', id, socket: path.join(dir, `${id}.sock`), rate: 0 });
    } else {
      notes.push(`devices.${index}: virtio-console is not attached — QEMU has no vhost-user-console front-end; the guest's console is QEMU's serial port on this terminal`);
    }
  });
  return { specs, scratchImages, notes };
}
