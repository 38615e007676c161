import type { DeviceConfig, VmConfig, WorkloadConfig } from '../config/schema.js';

/**
 * What the VMM's "firmware" tells the guest about one device: like ACPI tables or a device tree,
 * it is where the device lives on the bus and which interrupt vectors reach which vCPU.
 */
export interface BootDevice {
  /** Position in `config.devices`. */
  readonly index: number;
  readonly kind: DeviceConfig['type'];
  /** The vCPU whose guest kernel drives this device (its driver's state lives in that worker). */
  readonly owner: number;
  readonly transport: 'pci' | 'mmio';
  /** pci: the function's ECAM window (4 KiB of configuration space); mmio: the register window. */
  readonly base: number;
  /** mmio: the line interrupt's vector on the owner vCPU (pci devices allocate MSI-X vectors themselves). */
  readonly vector?: number;
  /** net: its number among the net devices, and the guest's interface settings on it (like `ip=` on a kernel command line). */
  readonly net?: { readonly number: number; readonly address: number; readonly prefixLength: number; readonly queuePairs: number };
}

/** One disk the guest sees (a blk device, or a LUN of a scsi device). */
export interface BootDisk {
  /** Position in `config.devices`. */
  readonly device: number;
  /** scsi: the LUN's address. */
  readonly scsi?: { readonly target: number; readonly lun: number };
}

/** Everything a vCPU needs to boot: the machine layout and its share of the work. */
export interface BootInfo {
  readonly vcpu: number;
  readonly vcpus: number;
  readonly memorySize: number;
  /** The guest RAM this vCPU's kernel allocates rings and DMA buffers from. */
  readonly heap: { readonly base: number; readonly length: number };
  /** The part of the PCI memory window this vCPU's kernel places its devices' BARs in. */
  readonly pciWindow: { readonly base: number; readonly length: number };
  readonly ring: VmConfig['ring'];
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly queueSize: number;
  readonly devices: readonly BootDevice[];
  /** Workloads this vCPU runs in order, with their position in `config.workloads`. */
  readonly workloads: readonly { readonly index: number; readonly config: WorkloadConfig; readonly seed: number }[];
  /** Each disk by disk number: its config.devices index, and for a scsi LUN its address. */
  readonly disks: readonly BootDisk[];
  /**
   * Part of a multi-VM run: after its workloads the vCPU keeps running (its network stack answers
   * ARP, ping, UDP echo and bench traffic) until the VMM releases it, when every VM is done.
   */
  readonly linger: boolean;
}
