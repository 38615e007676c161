import { isValidRange } from '@virtio-ts/memory';
import type { GuestMemory } from '@virtio-ts/memory';
import { MAX_QUEUE_SIZE } from '@virtio-ts/ring';
import type { QueueRing } from './queue-factory.js';

/** One of a virtqueue's three areas: where it is, how long it is, and its required alignment. */
export interface QueueArea {
  readonly name: 'desc' | 'driver' | 'device';
  readonly address: number;
  readonly length: number;
  readonly alignment: number;
}

/**
 * Sizes and alignments of the three areas (§2.6 table "Virtqueue Part ... Alignment ... Size"):
 * split — descriptor table 16·n (align 16), available ring 6 + 2·n (align 2), used ring
 * 6 + 8·n (align 4); packed — descriptor ring 16·n (align 16), driver and device event
 * suppression 4 bytes each (align 4). Sizes include the event idx fields, used or not.
 */
export function queueAreaSizes(layout: 'split' | 'packed', size: number): { desc: number; driver: number; device: number } {
  return layout === 'split'
    ? { desc: 16 * size, driver: 6 + 2 * size, device: 6 + 8 * size }
    : { desc: 16 * size, driver: 4, device: 4 };
}

/** The three areas of a queue placement, in the order desc, driver, device. */
export function queueAreas(queueRing: QueueRing): QueueArea[] {
  const sizes = queueAreaSizes(queueRing.layout, queueRing.ring.size);
  if (queueRing.layout === 'split') {
    const r = queueRing.ring;
    return [
      { name: 'desc', address: r.descTable, length: sizes.desc, alignment: 16 },
      { name: 'driver', address: r.availRing, length: sizes.driver, alignment: 2 },
      { name: 'device', address: r.usedRing, length: sizes.device, alignment: 4 },
    ];
  }
  const r = queueRing.ring;
  return [
    { name: 'desc', address: r.descRing, length: sizes.desc, alignment: 16 },
    { name: 'driver', address: r.driverEvent, length: sizes.driver, alignment: 4 },
    { name: 'device', address: r.deviceEvent, length: sizes.device, alignment: 4 },
  ];
}

/**
 * Why a queue size is invalid for a layout, or undefined when it is valid (§2.7: split sizes
 * are powers of two; §2.8: packed sizes are any value 1..32768; both at most `max`).
 */
export function queueSizeProblem(layout: 'split' | 'packed', size: number, max: number): string | undefined {
  if (!Number.isInteger(size) || size <= 0) return 'queue size must be at least 1';
  if (size > max || size > MAX_QUEUE_SIZE) return `queue size ${size} exceeds the maximum ${Math.min(max, MAX_QUEUE_SIZE)}`;
  if (layout === 'split' && (size & (size - 1)) !== 0) return `split queue size ${size} is not a power of two`;
  return undefined;
}

/**
 * Why a queue placement is unusable — an area unaligned, not a valid guest range, or not
 * entirely backed by guest memory — or undefined when it is usable.
 */
export function queueAreaProblem(memory: GuestMemory, queueRing: QueueRing): string | undefined {
  const areas = queueAreas(queueRing);
  for (const area of areas) {
    if (!isValidRange(area.address, area.length)) return `${area.name} area address 0x${area.address.toString(16)} is not a valid guest range`;
    if (area.address % area.alignment !== 0) return `${area.name} area 0x${area.address.toString(16)} is not ${area.alignment}-byte aligned`;
    if (!memory.isMapped(area.address, area.length)) return `${area.name} area 0x${area.address.toString(16)}+${area.length} is not backed by guest memory`;
  }
  // The areas must not overlap: the device writes the used ring, and must not write over the
  // descriptors or the available ring it reads (a driver gets this wrong only on purpose).
  for (let i = 0; i < areas.length; i++) {
    for (let j = i + 1; j < areas.length; j++) {
      const a = areas[i]!;
      const b = areas[j]!;
      if (a.address < b.address + b.length && b.address < a.address + a.length) return `${a.name} and ${b.name} areas overlap`;
    }
  }
  return undefined;
}
