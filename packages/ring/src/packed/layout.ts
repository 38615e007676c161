import type { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { DESCRIPTOR_SIZE, MAX_QUEUE_SIZE } from '../constants.js';
import { RingError } from '../errors.js';
import type { PackedQueueLayout } from '../types.js';

// VIRTIO 1.3 §2.8.10.1, table "Structure Size and Alignment": the Descriptor Ring is
// 16 * (Queue Size) bytes, 16-aligned; each Event Suppression structure is 4 bytes, 4-aligned.
// "The Queue Size value does not have to be a power of 2."

/** §2.8.10.1: alignment of the Descriptor Ring. */
export const PACKED_DESC_RING_ALIGN = 16;
/** §2.8.10.1: alignment of each Event Suppression structure. */
export const EVENT_SUPPRESSION_ALIGN = 4;
/** §2.8.14: an Event Suppression structure is `{ le16 desc; le16 flags; }`. */
export const EVENT_SUPPRESSION_SIZE = 4;

/** Offsets inside a packed descriptor (§2.8.13): `{ le64 addr; le32 len; le16 id; le16 flags; }`. */
export const PACKED_DESC_ADDR_OFFSET = 0;
export const PACKED_DESC_LEN_OFFSET = 8;
export const PACKED_DESC_ID_OFFSET = 12;
export const PACKED_DESC_FLAGS_OFFSET = 14;

/** True for a valid packed queue size: any integer in 1..32768 (§2.8.10.1). */
export function isValidPackedQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= MAX_QUEUE_SIZE;
}

/** Bytes of the Descriptor Ring of a packed queue of `size` entries. */
export function packedDescRingSize(size: number): number {
  return DESCRIPTOR_SIZE * size;
}

/** Bytes a layout built by {@link packedQueueLayout} spans from its (16-aligned) base. */
export function packedQueueFootprint(size: number): number {
  return packedDescRingSize(size) + 2 * EVENT_SUPPRESSION_SIZE;
}

/**
 * Places the three areas of a packed queue contiguously from `base` (rounded up to 16):
 * Descriptor Ring, then Driver Event Suppression, then Device Event Suppression.
 * {@link packedQueueFootprint} gives the bytes it spans.
 *
 * @example
 * ```ts
 * packedQueueLayout(3, 0x1000); // { size: 3, descRing: 0x1000, driverEvent: 0x1030, deviceEvent: 0x1034 }
 * ```
 */
export function packedQueueLayout(size: number, base: number): PackedQueueLayout {
  if (!isValidPackedQueueSize(size)) {
    throw new RingError('INVALID_LAYOUT', 'packed queue size must be an integer in 1..32768', { length: size });
  }
  if (!Number.isSafeInteger(base) || base < 0) {
    throw new RingError('INVALID_LAYOUT', 'queue base address must be a non-negative integer', { address: base });
  }
  const descRing = Math.ceil(base / PACKED_DESC_RING_ALIGN) * PACKED_DESC_RING_ALIGN;
  const driverEvent = descRing + packedDescRingSize(size); // 16-aligned, hence 4-aligned
  const deviceEvent = driverEvent + EVENT_SUPPRESSION_SIZE;
  return Object.freeze({ size, descRing, driverEvent, deviceEvent });
}

/** The regions holding each area of a validated packed layout. */
export interface ResolvedPackedLayout {
  readonly descRegion: GuestRegion;
  readonly driverEventRegion: GuestRegion;
  readonly deviceEventRegion: GuestRegion;
}

/**
 * Checks a layout against §2.8.10.1 and guest memory: size an integer in 1..32768, each area
 * aligned and wholly inside one region (so that typed views can be cached), and no two areas
 * overlapping (the device would otherwise read its own writes as the driver's). Throws
 * `INVALID_LAYOUT` (with the memory error as `cause` when an area is unmapped). Safe on
 * hostile input: every field is type-checked first.
 */
export function validatePackedLayout(layout: PackedQueueLayout, memory: GuestMemory): ResolvedPackedLayout {
  if (typeof layout !== 'object' || layout === null) {
    throw new RingError('INVALID_LAYOUT', 'packed layout must be an object');
  }
  const { size } = layout;
  if (!isValidPackedQueueSize(size)) {
    throw new RingError('INVALID_LAYOUT', 'packed queue size must be an integer in 1..32768', { length: size });
  }
  const ringBytes = packedDescRingSize(size);
  const descRegion = areaRegion(memory, 'descriptor ring', layout.descRing, ringBytes, PACKED_DESC_RING_ALIGN);
  const driverEventRegion = areaRegion(memory, 'driver event suppression', layout.driverEvent, EVENT_SUPPRESSION_SIZE, EVENT_SUPPRESSION_ALIGN);
  const deviceEventRegion = areaRegion(memory, 'device event suppression', layout.deviceEvent, EVENT_SUPPRESSION_SIZE, EVENT_SUPPRESSION_ALIGN);
  const areas: readonly [number, number][] = [
    [layout.descRing, ringBytes],
    [layout.driverEvent, EVENT_SUPPRESSION_SIZE],
    [layout.deviceEvent, EVENT_SUPPRESSION_SIZE],
  ];
  for (let i = 0; i < areas.length; i++) {
    for (let j = i + 1; j < areas.length; j++) {
      const [a, aLength] = areas[i]!;
      const [b, bLength] = areas[j]!;
      if (a < b + bLength && b < a + aLength) {
        throw new RingError('INVALID_LAYOUT', 'packed queue areas overlap', { address: b });
      }
    }
  }
  return { descRegion, driverEventRegion, deviceEventRegion };
}

function areaRegion(memory: GuestMemory, name: string, address: number, length: number, alignment: number): GuestRegion {
  if (typeof address !== 'number' || !Number.isSafeInteger(address) || address < 0) {
    throw new RingError('INVALID_LAYOUT', `${name} address is not a valid guest address`, { address: typeof address === 'number' ? address : -1 });
  }
  if (address % alignment !== 0) {
    throw new RingError('INVALID_LAYOUT', `${name} must be ${alignment}-byte aligned`, { address });
  }
  try {
    return memory.regionFor(address, length, name);
  } catch (cause) {
    throw new RingError('INVALID_LAYOUT', `${name} must lie inside one guest memory region`, { address, length }, { cause });
  }
}

/** True on little-endian hosts: the typed views read le16/le32 guest fields directly. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Cached typed views over a validated packed ring: indices into the regions' whole-buffer
 * `u16`/`u32` arrays, computed once. Descriptor `i` starts at `u32[desc32 + 4 * i]`.
 * Little-endian hosts only (checked here).
 * @internal
 */
export class PackedRingViews {
  readonly descU16: Uint16Array;
  readonly descU32: Uint32Array;
  /** u32 index of descriptor 0. */
  readonly desc32: number;
  /** u16 index of descriptor 0. */
  readonly desc16: number;
  /** Driver Event Suppression as one u32 word: low half `desc` (off_wrap), high half `flags`. */
  readonly driverEventU32: Uint32Array;
  readonly driverEvent32: number;
  /** Device Event Suppression, same shape. */
  readonly deviceEventU32: Uint32Array;
  readonly deviceEvent32: number;

  constructor(layout: PackedQueueLayout, resolved: ResolvedPackedLayout) {
    // Guest memory is little-endian (§1.4); the views below are host-endian.
    if (!LITTLE_ENDIAN_HOST) throw new RingError('INVALID_ARGUMENT', 'big-endian hosts are not supported');
    const d = resolved.descRegion;
    const descByte = d.offset + (layout.descRing - d.start);
    this.descU16 = d.u16;
    this.descU32 = d.u32;
    this.desc32 = descByte >>> 2;
    this.desc16 = descByte >>> 1;
    const dr = resolved.driverEventRegion;
    this.driverEventU32 = dr.u32;
    this.driverEvent32 = (dr.offset + (layout.driverEvent - dr.start)) >>> 2;
    const dv = resolved.deviceEventRegion;
    this.deviceEventU32 = dv.u32;
    this.deviceEvent32 = (dv.offset + (layout.deviceEvent - dv.start)) >>> 2;
  }
}
