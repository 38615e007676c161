import type { VirtioTransport } from '@virtio-ts/device';
import { BumpAddressSpaceAllocator, VirtioPciTransport } from '@virtio-ts/pci';
import type { BootDevice, BootInfo } from '../engine/boot-info.js';
import type { GuestBus } from '../machine/bus.js';
import { GuestMsiController } from './guest-msi.js';
import type { GuestKernel } from './guest-kernel.js';
import { attachMmio } from './attach-mmio.js';

/**
 * The guest kernel's bus probe: brings up the transport of every device this vCPU owns (virtio-pci
 * through its configuration space in ECAM, BARs placed in this vCPU's part of the PCI window,
 * MSI-X vectors from this vCPU's table; or virtio-mmio at its window with its line vector).
 */
export function probeTransports(kernel: GuestKernel, boot: BootInfo): Map<BootDevice, VirtioTransport> {
  const transports = new Map<BootDevice, VirtioTransport>();
  const addressSpace = new BumpAddressSpaceAllocator(boot.pciWindow.base, boot.pciWindow.length);
  const msi = new GuestMsiController(kernel);
  for (const device of boot.devices) {
    if (device.transport === 'pci') {
      transports.set(
        device,
        VirtioPciTransport.probe({
          config: ecamAccessor(kernel.bus, device.base),
          mmio: kernel.bus,
          addressSpace,
          memory: kernel.memory,
          allocator: kernel.allocator,
          msi,
        }),
      );
    } else {
      transports.set(device, attachMmio(kernel, device));
    }
  }
  return transports;
}

/** A function's configuration space through ECAM: plain MMIO at its 4 KiB window. */
function ecamAccessor(bus: GuestBus, base: number) {
  return {
    read: (offset: number, size: 1 | 2 | 4) => bus.read(base + offset, size),
    write: (offset: number, size: 1 | 2 | 4, value: number) => bus.write(base + offset, size, value),
  };
}
