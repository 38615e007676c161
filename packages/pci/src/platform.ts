// The contracts between a transport and the platform around it (the VMM, or a test harness).

/**
 * Width of a register access in bytes. An 8-byte access carries its value as a JS number: exact
 * up to 2^53 (every guest address), above that the high bits lose precision. Transports handle
 * 8-byte accesses as two 4-byte ones, low half first (VIRTIO 1.3 §4.1.3: "64-bit fields are to be
 * treated as two 32-bit fields").
 */
export type AccessSize = 1 | 2 | 4 | 8;

/** Delivers an MSI / MSI-X message: the device's memory write of `data` to `address` (device side). */
export interface MsiSink {
  deliver(address: number, data: number): void;
}

/** A level-triggered INTx (or virtio-mmio interrupt) line (device side). */
export interface IntxLine {
  setLevel(asserted: boolean): void;
}

/**
 * Access to one PCI function's configuration space (the driver's view: CF8/CFC or ECAM).
 * Reads of absent functions return all ones, as on real hardware.
 */
export interface PciConfigAccessor {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Guest-physical MMIO accesses (the driver's loads and stores that exit to the VMM). */
export interface MmioAccessor {
  read(address: number, size: AccessSize): number;
  write(address: number, size: AccessSize, value: number): void;
}

/** Hands out guest-physical MMIO windows for BARs (driver side: the guest's PCI resource allocator). */
export interface AddressSpaceAllocator {
  /**
   * A free window of `size` bytes aligned to `alignment`, below 2^32 when `below4G` (a 32-bit
   * BAR). Throws when none is left.
   */
  allocate(size: number, alignment: number, below4G: boolean): number;
}

/**
 * The guest's interrupt controller (driver side): allocates MSI messages and runs their handlers
 * when the device's message arrives (through the platform's {@link MsiSink}).
 */
export interface MsiController {
  /** A message (address, data) that, when written by a device, runs `handler`. */
  allocate(handler: () => void): { readonly address: number; readonly data: number };
  /** Releases a message from `allocate`. */
  release(data: number): void;
}
