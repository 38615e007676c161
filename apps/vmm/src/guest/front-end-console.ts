import type { VirtioTransport } from '@virtio-ts/device';
import type { BootInfo } from '../engine/boot-info.js';
import { VmmError } from '../errors.js';
import type { GuestConsole } from '../workloads/guest-devices.js';
import type { GuestKernel } from './guest-kernel.js';

/** Initialises the console front-end (port 0) and returns it as the workloads see it. */
export function attachConsole(kernel: GuestKernel, transport: VirtioTransport, boot: BootInfo): Promise<GuestConsole> {
  void kernel;
  void transport;
  void boot;
  return Promise.reject(new VmmError('INTERNAL', 'the virtio-console front-end has not landed in @virtio-ts/drivers yet'));
}
