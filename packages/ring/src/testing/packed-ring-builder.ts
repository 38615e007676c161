import type { GuestMemory } from '@virtio-ts/memory';
import { VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED } from '../constants.js';
import type { PackedQueueLayout } from '../types.js';

/** One raw packed descriptor (§2.8.13) as a test writes it; `flags` excludes AVAIL/USED unless `raw`. */
export interface RawPackedDescriptor {
  readonly address: number | bigint;
  readonly length: number;
  readonly id?: number;
  readonly flags?: number;
  /** Write `flags` exactly as given, without adding the AVAIL/USED bits of the lap. */
  readonly raw?: boolean;
}

/** AVAIL/USED bits that make a descriptor available in a lap with wrap counter `wrap` (§2.8.1). */
export function packedAvailFlags(wrap: boolean): number {
  return wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
}

/**
 * A hostile or hand-driven packed driver for tests: writes raw descriptors into a packed ring
 * at its own position and wrap counter, publishing the head's flags last as §2.8.17 asks (or
 * not, when a test wants otherwise). It validates nothing: that is the point.
 *
 * @example
 * ```ts
 * const builder = new PackedRingBuilder(memory, layout);
 * builder.publish([{ address: 0x10000, length: 16, flags: VIRTQ_DESC_F_NEXT }, { address: 0x20000, length: 1, id: 3, flags: VIRTQ_DESC_F_WRITE }]);
 * device.pop(); // { head: 3, readable: [...], writable: [...], descriptorCount: 2 }
 * ```
 */
export class PackedRingBuilder {
  /** Next ring position the builder writes. */
  position = 0;
  /** The builder's Driver Ring Wrap Counter. */
  wrap = true;

  constructor(
    readonly memory: GuestMemory,
    readonly layout: PackedQueueLayout,
  ) {}

  /** Writes one descriptor at `slot` with the given lap's AVAIL/USED bits (unless `raw`). */
  write(slot: number, descriptor: RawPackedDescriptor, wrap = this.wrap): void {
    const at = this.layout.descRing + slot * 16;
    if (typeof descriptor.address === 'number') {
      this.memory.writeU32(at, descriptor.address >>> 0);
      this.memory.writeU32(at + 4, Math.floor(descriptor.address / 0x1_0000_0000) >>> 0);
    } else {
      this.memory.writeU64(at, descriptor.address);
    }
    this.memory.writeU32(at + 8, descriptor.length >>> 0);
    this.memory.writeU16(at + 12, descriptor.id ?? 0);
    const flags = descriptor.raw === true ? (descriptor.flags ?? 0) : (descriptor.flags ?? 0) | packedAvailFlags(wrap);
    this.memory.writeU16(at + 14, flags & 0xffff);
  }

  /**
   * Writes `descriptors` at consecutive slots from the current position (wrapping and toggling
   * the wrap counter at the end of the ring), the head's flags last, and advances. With
   * `publishHead: false` the head is written without its AVAIL/USED bits (not yet available).
   */
  publish(descriptors: readonly RawPackedDescriptor[], options: { publishHead?: boolean } = {}): void {
    const size = this.layout.size;
    const head = this.position;
    const headWrap = this.wrap;
    let slot = head;
    let wrap = headWrap;
    for (let i = 0; i < descriptors.length; i++) {
      if (i > 0) this.write(slot, descriptors[i]!, wrap);
      if (++slot === size) {
        slot = 0;
        wrap = !wrap;
      }
    }
    const first = descriptors[0]!;
    if (options.publishHead === false) this.write(head, { ...first, raw: true, flags: (first.flags ?? 0) & ~(VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED) }, headWrap);
    else this.write(head, first, headWrap);
    this.position = slot;
    this.wrap = wrap;
  }

  /** Reads the descriptor at `slot` (what the device wrote back: id, len, flags). */
  read(slot: number): { address: bigint; length: number; id: number; flags: number } {
    const at = this.layout.descRing + slot * 16;
    return {
      address: this.memory.readU64(at),
      length: this.memory.readU32(at + 8),
      id: this.memory.readU16(at + 12),
      flags: this.memory.readU16(at + 14),
    };
  }

  /** Writes an indirect table of raw descriptors at `address` (§2.8.7). */
  writeTable(address: number, descriptors: readonly RawPackedDescriptor[]): void {
    for (let i = 0; i < descriptors.length; i++) {
      const d = descriptors[i]!;
      const at = address + i * 16;
      this.memory.writeU64(at, BigInt(d.address));
      this.memory.writeU32(at + 8, d.length >>> 0);
      this.memory.writeU16(at + 12, d.id ?? 0);
      this.memory.writeU16(at + 14, (d.flags ?? 0) & 0xffff);
    }
  }
}
