import type { VirtioTransport } from '@virtio-ts/device';
import { VirtioMmioTransport } from '@virtio-ts/pci';
import type { BootDevice } from '../engine/boot-info.js';
import { VmmError } from '../errors.js';
import type { GuestKernel } from './guest-kernel.js';

/**
 * Brings up a virtio-mmio device's driver-side transport at the window the boot info names, and
 * installs its line interrupt's handler (read InterruptStatus, acknowledge, run the queue handlers).
 */
export function attachMmio(kernel: GuestKernel, device: BootDevice): VirtioTransport {
  if (device.vector === undefined) throw new VmmError('INTERNAL', `virtio-mmio device ${device.index} has no interrupt vector`);
  const transport = VirtioMmioTransport.probe({ mmio: kernel.bus, base: device.base, memory: kernel.memory, allocator: kernel.allocator });
  kernel.setVector(device.vector, () => {
    transport.handleInterrupt();
  });
  return transport;
}
