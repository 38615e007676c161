import { DeviceError } from '@virtio-ts/device';
import {
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
} from './constants.js';
import type { AccessSize, MsiSink } from './platform.js';

/** PCI 3.0 §6.8.2: at most 2048 MSI-X vectors (Table Size is 11 bits). */
export const MAX_MSIX_VECTORS = 2048;

/**
 * MSI-X table and Pending Bit Array of one function (PCI Local Bus 3.0 §6.8.2).
 *
 * A vector is delivered when MSI-X is enabled, the function is not masked, the vector is not
 * masked and bus mastering is on; otherwise its pending bit is set and the message goes out
 * when the last of these conditions clears (unmask, function unmask, bus master enable).
 * Vector control starts masked, as after a PCI reset.
 */
export class MsixTable {
  readonly size: number;
  /** Table bytes as dwords: per entry [address lo, address hi, data, vector control]. */
  private readonly table: Uint32Array;
  private readonly pending: Uint32Array;
  enabled = false;
  functionMasked = false;
  busMaster = false;
  /** Messages delivered (a counter for tests and metrics). */
  delivered = 0;

  constructor(
    size: number,
    private readonly sink: MsiSink | undefined,
    private readonly report: (error: DeviceError) => void,
  ) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_MSIX_VECTORS) throw new RangeError(`MSI-X table size ${size} is not 1..${MAX_MSIX_VECTORS}`);
    this.size = size;
    this.table = new Uint32Array(size * 4);
    this.pending = new Uint32Array(Math.ceil(size / 64) * 2); // whole QWORDs (PCI 3.0 §6.8.2.6)
    this.reset();
  }

  /** Bytes of the table (16 per vector). */
  get tableBytes(): number {
    return this.size * PCI_MSIX_ENTRY_SIZE;
  }

  /** Bytes of the PBA (whole QWORDs). */
  get pbaBytes(): number {
    return this.pending.length * 4;
  }

  /** Function reset: every vector masked, nothing pending, MSI-X disabled. */
  reset(): void {
    this.table.fill(0);
    for (let v = 0; v < this.size; v++) this.table[v * 4 + 3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    this.pending.fill(0);
    this.enabled = false;
    this.functionMasked = false;
  }

  /** Table and PBA as plain arrays (for a snapshot). */
  saveState(): { table: number[]; pending: number[] } {
    return { table: [...this.table], pending: [...this.pending] };
  }

  /** Why a saved table/PBA cannot be restored into this table, or undefined. */
  static stateProblem(state: unknown, size: number): string | undefined {
    if (typeof state !== 'object' || state === null) return 'msix must be an object';
    const { table, pending } = state as { table?: unknown; pending?: unknown };
    const u32s = (value: unknown, length: number) =>
      Array.isArray(value) && value.length === length && value.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff);
    if (!u32s(table, size * 4)) return `msix.table must hold ${size * 4} u32 values`;
    if (!u32s(pending, Math.ceil(size / 64) * 2)) return 'msix.pending has the wrong length';
    return undefined;
  }

  /** Restores a state checked by {@link stateProblem} (reserved bits are cleared as on a write). */
  restoreState(state: { table: number[]; pending: number[] }): void {
    for (let i = 0; i < this.table.length; i++) {
      const field = (i & 3) * 4;
      const v = state.table[i]!;
      this.table[i] = field === PCI_MSIX_ENTRY_VECTOR_CTRL ? v & PCI_MSIX_ENTRY_CTRL_MASKBIT : field === PCI_MSIX_ENTRY_LOWER_ADDR ? (v & ~3) >>> 0 : v;
    }
    for (let i = 0; i < this.pending.length; i++) this.pending[i] = state.pending[i]!;
    // Bits past the table size are not vectors.
    const last = this.size % 32;
    if (last !== 0) this.pending[this.size >>> 5]! &= (1 << last) - 1;
    for (let w = Math.ceil(this.size / 32); w < this.pending.length; w++) this.pending[w] = 0;
  }

  isMasked(vector: number): boolean {
    return (this.table[vector * 4 + 3]! & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  isPending(vector: number): boolean {
    return (this.pending[vector >>> 5]! & (1 << (vector & 31))) !== 0;
  }

  /** Raises `vector`: delivered now or left pending. Out-of-range vectors are dropped. */
  signal(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.size) return;
    if (!this.enabled) return;
    if (this.functionMasked || this.isMasked(vector) || !this.busMaster) {
      this.pending[vector >>> 5]! |= 1 << (vector & 31);
      return;
    }
    this.send(vector);
  }

  /** Delivers the pending vectors that are now deliverable (after any unmask / enable). */
  flush(): void {
    if (!this.enabled || this.functionMasked || !this.busMaster) return;
    for (let word = 0; word < this.pending.length; word++) {
      let bits = this.pending[word]!;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits);
        bits &= ~(1 << bit);
        const vector = word * 32 + bit;
        if (vector < this.size && !this.isMasked(vector)) {
          this.pending[word]! &= ~(1 << bit);
          this.send(vector);
        }
      }
    }
  }

  /** A table read (PCI 3.0 §6.8.2: DWORD or aligned QWORD accesses). */
  readTable(offset: number, size: AccessSize): number {
    if (!this.tableAccessOk(offset, size, this.tableBytes, 'read')) return 0;
    const lo = this.table[offset >>> 2]!;
    return size === 8 ? this.table[(offset >>> 2) + 1]! * 0x1_0000_0000 + lo : lo;
  }

  writeTable(offset: number, size: AccessSize, value: number): void {
    if (!this.tableAccessOk(offset, size, this.tableBytes, 'write')) return;
    const index = offset >>> 2;
    if (size === 8) {
      this.writeDword(index, value % 0x1_0000_0000);
      this.writeDword(index + 1, Math.floor(value / 0x1_0000_0000));
    } else {
      this.writeDword(index, value);
    }
  }

  /** A PBA read; the PBA is read-only, writes are dropped (and recorded). */
  readPba(offset: number, size: AccessSize): number {
    if (!this.tableAccessOk(offset, size, this.pbaBytes, 'read')) return 0;
    const lo = this.pending[offset >>> 2]!;
    return size === 8 ? this.pending[(offset >>> 2) + 1]! * 0x1_0000_0000 + lo : lo;
  }

  writePba(offset: number, size: AccessSize): void {
    this.report(new DeviceError('INVALID_ACCESS', 'the MSI-X PBA is read-only', { offset, size }));
  }

  private writeDword(index: number, value: number): void {
    const field = (index & 3) * 4;
    if (field === PCI_MSIX_ENTRY_VECTOR_CTRL) {
      // Only the mask bit is writable; the rest is reserved.
      this.table[index] = value & PCI_MSIX_ENTRY_CTRL_MASKBIT;
      if ((value & PCI_MSIX_ENTRY_CTRL_MASKBIT) === 0) this.flush();
    } else if (field === PCI_MSIX_ENTRY_LOWER_ADDR) {
      this.table[index] = (value >>> 0) & ~3; // DWORD-aligned message address
    } else if (field === PCI_MSIX_ENTRY_UPPER_ADDR || field === PCI_MSIX_ENTRY_DATA) {
      this.table[index] = value >>> 0;
    }
  }

  private tableAccessOk(offset: number, size: AccessSize, limit: number, op: string): boolean {
    const ok = (size === 4 || size === 8) && Number.isInteger(offset) && offset >= 0 && offset % size === 0 && offset + size <= limit;
    if (!ok) this.report(new DeviceError('INVALID_ACCESS', `MSI-X ${op} of ${size} bytes at an invalid offset`, { offset, size }));
    return ok;
  }

  private send(vector: number): void {
    const base = vector * 4;
    const address = this.table[base + 1]! * 0x1_0000_0000 + this.table[base]!;
    this.delivered++;
    this.sink?.deliver(address, this.table[base + 2]!);
  }
}
