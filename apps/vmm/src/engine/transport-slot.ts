import type { DeviceCore } from '@virtio-ts/device';
import { PciBus, VirtioPciDevice, type IntxLine, type MsiSink } from '@virtio-ts/pci';
import type { GuestMemory } from '@virtio-ts/memory';
import type { VirtioDevice } from '@virtio-ts/device';
import type { MmioHandler } from '../machine/bus.js';
import { ECAM_BASE, ECAM_SLOT_STRIDE } from './layout.js';

/** A register window a transport claims on the VMM's bus. */
export interface BusWindow {
  readonly base: number;
  readonly length: number;
  readonly name: string;
  readonly handler: MmioHandler;
}

/** A queue notify address that the VMM turns into a doorbell while it is valid. */
export interface NotifyAddress {
  readonly queue: number;
  readonly address: number;
  readonly size: 2 | 4;
  readonly datamatch?: number;
}

/**
 * The VMM side of one device's transport: the register windows it claims, where its queue
 * notifications land (for the doorbells), and how a rung doorbell is delivered.
 */
export interface TransportSlot {
  readonly transport: 'pci' | 'mmio';
  readonly core: DeviceCore;
  /** Windows claimed once at machine creation. */
  readonly windows: readonly BusWindow[];
  /** Notify addresses now (a pci BAR moves when the guest programs it). */
  notifyAddresses(): NotifyAddress[];
  /** Delivers queue `queue`'s notification as if its notify write had reached the device. */
  notifyQueue(queue: number): void;
}

/** Options shared by the transports' slots. */
export interface SlotOptions {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  readonly name: string;
  /** Called after every configuration write (a BAR or the command register may have changed). */
  readonly onConfigWrite: () => void;
}

/**
 * virtio-pci on bus 0: the function's 4 KiB of ECAM at slot `slot`; its BARs are decoded by the
 * shared {@link PciBus} in the PCI memory window (mapped once by the machine).
 */
export function pciSlot(options: SlotOptions & { readonly slot: number; readonly pciBus: PciBus; readonly msi: MsiSink; readonly intx?: IntxLine }): TransportSlot & { readonly pci: VirtioPciDevice } {
  const pci = new VirtioPciDevice({ device: options.device, memory: options.memory, msi: options.msi, intx: options.intx });
  options.pciBus.attach(pci);
  const ecam: MmioHandler = {
    // Extended configuration space (256..4095) is absent: reads 0, as for a conventional function.
    read: (offset, size) => (offset < 256 ? pci.configRead(offset, size) : 0),
    write: (offset, size, value) => {
      if (offset >= 256) return;
      pci.configWrite(offset, size, value);
      options.onConfigWrite();
    },
  };
  return {
    transport: 'pci',
    pci,
    core: pci.core,
    windows: [{ base: ECAM_BASE + options.slot * ECAM_SLOT_STRIDE, length: 0x1000, name: `${options.name} ECAM`, handler: ecam }],
    notifyAddresses() {
      if (!pci.memoryEnabled) return [];
      const result: NotifyAddress[] = [];
      for (let queue = 0; queue < pci.core.numQueues; queue++) {
        const location = pci.notifyLocation(queue);
        const base = pci.barAddress(location.bar);
        if (base === undefined || base === 0) continue;
        result.push({ queue, address: base + location.offset, size: 2 });
      }
      return result;
    },
    notifyQueue(queue) {
      const location = pci.notifyLocation(queue);
      pci.mmioWrite(location.bar, location.offset, 2, queue);
    },
  };
}
