import { VmmError } from '../errors.js';

/**
 * An access width in bytes. An 8-byte access is carried as two 4-byte ones, low half first
 * (VIRTIO 1.3 §4.1.3: 64-bit fields are treated as two 32-bit fields).
 */
export type AccessSize = 1 | 2 | 4 | 8;

/** Splits an 8-byte read into two 4-byte ones (low first). */
export function read64(read: (address: number, size: 4) => number, address: number): number {
  const low = read(address, 4) >>> 0;
  const high = read(address + 4, 4) >>> 0;
  return high * 2 ** 32 + low;
}

/** Splits an 8-byte write into two 4-byte ones (low first). */
export function write64(write: (address: number, size: 4, value: number) => void, address: number, value: number): void {
  write(address, 4, value % 2 ** 32 >>> 0);
  write(address + 4, 4, Math.floor(value / 2 ** 32) >>> 0);
}

/** A device's register window, as the VMM sees it: offsets are relative to the window's base. */
export interface MmioHandler {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** What the guest's register accesses go through: a synchronous exit to the VMM, or a direct call. */
export interface GuestBus {
  read(address: number, size: AccessSize): number;
  write(address: number, size: AccessSize, value: number): void;
}

interface Mapping {
  readonly base: number;
  readonly end: number;
  readonly name: string;
  readonly handler: MmioHandler;
}

/** All ones of the access width: what a read of an unclaimed address returns on real hardware. */
export function allOnes(size: AccessSize): number {
  return size === 8 ? 2 ** 64 - 1 : size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

/**
 * The VMM's MMIO address map: PCI ECAM, BARs and virtio-mmio windows. A device handler that
 * throws is caught here (a guest must not crash the VMM through a register access); the fault is
 * counted and reported through `onFault`, and a read returns all ones.
 */
export class MmioBus implements GuestBus {
  private readonly mappings: Mapping[] = [];
  private last: Mapping | undefined;
  /** Accesses to an address no device claims (the guest reads all ones; writes are dropped). */
  unclaimedAccesses = 0;
  /** Exits served. */
  exits = 0;

  constructor(private readonly onFault: (name: string, error: unknown) => void = () => {}) {}

  /** Claims `[base, base + length)` for `handler`. Throws INTERNAL on an overlap (a VMM bug, not a guest fault). */
  map(base: number, length: number, name: string, handler: MmioHandler): void {
    const end = base + length;
    for (const m of this.mappings) {
      if (base < m.end && m.base < end) throw new VmmError('INTERNAL', `MMIO window ${name} overlaps ${m.name}`);
    }
    this.mappings.push({ base, end, name, handler });
    this.mappings.sort((a, b) => a.base - b.base);
  }

  /** Releases the window that starts at `base` (a BAR moved). */
  unmap(base: number): void {
    const index = this.mappings.findIndex((m) => m.base === base);
    if (index >= 0) this.mappings.splice(index, 1);
    this.last = undefined;
  }

  private find(address: number, size: number): Mapping | undefined {
    const last = this.last;
    if (last !== undefined && address >= last.base && address + size <= last.end) return last;
    for (const m of this.mappings) {
      if (address >= m.base && address + size <= m.end) {
        this.last = m;
        return m;
      }
    }
    return undefined;
  }

  read(address: number, size: AccessSize): number {
    if (size === 8) return read64((a, s) => this.read(a, s), address);
    this.exits++;
    const m = this.find(address, size);
    if (m === undefined) {
      this.unclaimedAccesses++;
      return allOnes(size);
    }
    try {
      return m.handler.read(address - m.base, size) >>> 0;
    } catch (error) {
      this.onFault(m.name, error);
      return allOnes(size);
    }
  }

  write(address: number, size: AccessSize, value: number): void {
    if (size === 8) return write64((a, s, v) => this.write(a, s, v), address, value);
    this.exits++;
    const m = this.find(address, size);
    if (m === undefined) {
      this.unclaimedAccesses++;
      return;
    }
    try {
      m.handler.write(address - m.base, size, value);
    } catch (error) {
      this.onFault(m.name, error);
    }
  }
}
