import { PciError } from './errors.js';
import type { AccessSize, AddressSpaceAllocator, MmioAccessor, MsiController, MsiSink, PciConfigAccessor } from './platform.js';
import type { VirtioPciDevice } from './virtio-pci-device.js';

const BAR_COUNT = 6;

/**
 * A minimal PCI host bridge for a single-threaded VMM or a test: numbered slots, a configuration
 * accessor per slot, and guest-physical MMIO decoded through each function's BARs (only while
 * its memory space is enabled, as real decoding works). Unclaimed reads return all ones.
 */
export class PciBus implements MmioAccessor {
  private readonly slots: VirtioPciDevice[] = [];

  /** Plugs a function in; returns its slot number. */
  attach(device: VirtioPciDevice): number {
    this.slots.push(device);
    return this.slots.length - 1;
  }

  /** The configuration accessor of `slot` (an empty slot reads all ones and ignores writes). */
  configAccessor(slot: number): PciConfigAccessor {
    return {
      read: (offset, size) => {
        const device = this.slots[slot];
        return device === undefined ? (size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff) : device.configRead(offset, size);
      },
      write: (offset, size, value) => this.slots[slot]?.configWrite(offset, size, value),
    };
  }

  read(address: number, size: AccessSize): number {
    const hit = this.decode(address, size);
    if (hit === undefined) return size === 8 ? 2 ** 64 - 1 : size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
    return hit.device.mmioRead(hit.bar, hit.offset, size);
  }

  write(address: number, size: AccessSize, value: number): void {
    const hit = this.decode(address, size);
    hit?.device.mmioWrite(hit.bar, hit.offset, size, value);
  }

  private decode(address: number, size: number): { device: VirtioPciDevice; bar: number; offset: number } | undefined {
    for (const device of this.slots) {
      if (!device.memoryEnabled) continue;
      for (let bar = 0; bar < BAR_COUNT; bar++) {
        const length = device.barSize(bar);
        const base = device.barAddress(bar);
        if (length === 0 || base === undefined || base === 0) continue;
        if (address >= base && address + size <= base + length) return { device, bar, offset: address - base };
      }
    }
    return undefined;
  }
}

/**
 * A synchronous MSI controller: the device side's {@link MsiSink} and the driver side's
 * {@link MsiController} in one object. A message runs its handler immediately (a test harness or
 * the single-threaded model guest); unknown messages are counted in `spurious`.
 */
export class DirectMsiController implements MsiSink, MsiController {
  /** The x86 interrupt address window; any DWORD-aligned address works the same here. */
  static readonly ADDRESS = 0xfee0_0000;
  private readonly handlers = new Map<number, () => void>();
  private nextData = 0x20;
  spurious = 0;

  allocate(handler: () => void): { address: number; data: number } {
    const data = this.nextData++;
    this.handlers.set(data, handler);
    return { address: DirectMsiController.ADDRESS, data };
  }

  release(data: number): void {
    this.handlers.delete(data);
  }

  deliver(address: number, data: number): void {
    const handler = address === DirectMsiController.ADDRESS ? this.handlers.get(data) : undefined;
    if (handler === undefined) this.spurious++;
    else handler();
  }
}

/** A bump allocator of guest-physical MMIO windows inside `[base, base + length)`. */
export class BumpAddressSpaceAllocator implements AddressSpaceAllocator {
  private next: number;
  constructor(
    private readonly base: number,
    private readonly length: number,
  ) {
    this.next = base;
  }

  allocate(size: number, alignment: number, below4G: boolean): number {
    const start = Math.ceil(this.next / alignment) * alignment;
    if (start + size > this.base + this.length || (below4G && start + size > 0x1_0000_0000)) {
      throw new PciError('OUT_OF_ADDRESS_SPACE', 'no room left for the BAR', { size });
    }
    this.next = start + size;
    return start;
  }
}
