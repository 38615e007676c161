import { GuestMemory } from '@virtio-ts/memory';
import { GuestMemoryAllocator, type VirtioDevice } from '@virtio-ts/device';
import { BumpAddressSpaceAllocator, DirectMsiController, PciBus } from '../pci-bus.js';
import type { MmioAccessor } from '../platform.js';
import { VirtioMmioDevice, VIRTIO_MMIO_WINDOW_SIZE } from '../virtio-mmio-device.js';
import { VirtioMmioTransport } from '../virtio-mmio-transport.js';
import { VirtioPciDevice } from '../virtio-pci-device.js';
import { VirtioPciTransport } from '../virtio-pci-transport.js';

/** Guest RAM of the harnesses: 8 MiB at 0; the driver allocates rings and buffers from 64 KiB up. */
export const HARNESS_RAM_SIZE = 8 << 20;

/** A device and its driver, wired synchronously in one thread. */
export interface PciHarness {
  readonly memory: GuestMemory;
  readonly allocator: GuestMemoryAllocator;
  readonly bus: PciBus;
  readonly msi: DirectMsiController;
  readonly device: VirtioPciDevice;
  readonly transport: VirtioPciTransport;
  /** INTx level (when probed without MSI-X). */
  readonly intx: { asserted: boolean };
}

/** A virtio-pci device on a {@link PciBus}, probed by our driver side (with MSI-X unless `intx`). */
export function createPciHarness(device: VirtioDevice, options: { intx?: boolean } = {}): PciHarness {
  const memory = GuestMemory.create([{ guestAddress: 0, size: HARNESS_RAM_SIZE }]);
  const allocator = new GuestMemoryAllocator(memory, 0x10000, HARNESS_RAM_SIZE - 0x10000);
  const msi = new DirectMsiController();
  const intx = { asserted: false };
  const pciDevice = new VirtioPciDevice({ device, memory, msi, intx: { setLevel: (level) => (intx.asserted = level) } });
  const bus = new PciBus();
  const slot = bus.attach(pciDevice);
  const transport = VirtioPciTransport.probe({
    config: bus.configAccessor(slot),
    mmio: bus,
    addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 0x1000_0000),
    memory,
    allocator,
    msi: options.intx === true ? undefined : msi,
  });
  return { memory, allocator, bus, msi, device: pciDevice, transport, intx };
}

/** A device and its virtio-mmio driver. */
export interface MmioHarness {
  readonly memory: GuestMemory;
  readonly allocator: GuestMemoryAllocator;
  readonly device: VirtioMmioDevice;
  readonly transport: VirtioMmioTransport;
  readonly line: { asserted: boolean };
  /** The bus: the device's window at `MMIO_BASE`. */
  readonly mmio: MmioAccessor;
}

export const MMIO_BASE = 0xd000_0000;

/** A virtio-mmio device at {@link MMIO_BASE}, probed by our driver side. */
export function createMmioHarness(device: VirtioDevice): MmioHarness {
  const memory = GuestMemory.create([{ guestAddress: 0, size: HARNESS_RAM_SIZE }]);
  const allocator = new GuestMemoryAllocator(memory, 0x10000, HARNESS_RAM_SIZE - 0x10000);
  const line = { asserted: false };
  const mmioDevice = new VirtioMmioDevice({ device, memory, interrupt: { setLevel: (level) => (line.asserted = level) } });
  const inWindow = (address: number, size: number) => address >= MMIO_BASE && address + size <= MMIO_BASE + VIRTIO_MMIO_WINDOW_SIZE;
  const mmio: MmioAccessor = {
    read: (address, size) => (inWindow(address, size) ? mmioDevice.mmioRead(address - MMIO_BASE, size) : 0xffff_ffff),
    write: (address, size, value) => {
      if (inWindow(address, size)) mmioDevice.mmioWrite(address - MMIO_BASE, size, value);
    },
  };
  const transport = VirtioMmioTransport.probe({ mmio, base: MMIO_BASE, memory, allocator });
  return { memory, allocator, device: mmioDevice, transport, line, mmio };
}
