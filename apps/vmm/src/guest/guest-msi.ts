import type { MsiController } from '@virtio-ts/pci';
import { msiAddress } from '../machine/msi.js';
import type { GuestKernel } from './guest-kernel.js';

/**
 * The driver side's MSI controller on one vCPU: a message (this vCPU's address, a free vector)
 * whose arrival runs the handler through the kernel's vector table.
 */
export class GuestMsiController implements MsiController {
  constructor(private readonly kernel: GuestKernel) {}

  allocate(handler: () => void): { readonly address: number; readonly data: number } {
    const vector = this.kernel.allocateVector(handler);
    return { address: msiAddress(this.kernel.vcpu), data: vector };
  }

  release(data: number): void {
    this.kernel.freeVector(data);
  }
}
