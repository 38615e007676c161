import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../testing/bytes.js';
import { harness } from '../testing/harness.js';
import { MemoryDisk } from '../testing/memory-disk.js';
import { BlkDevice } from './blk-device.js';
import {
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from './constants.js';
import { encodeDiscardSegments, encodeRequestHeader } from './request.js';

const SECTORS = 64;
/** Each request of a batch owns a disjoint 8-sector slot, so completion order cannot change the outcome. */
const SLOT = 8;

type Op =
  | { kind: 'read' | 'write' | 'discard' | 'zero'; slot: number; first: number; count: number; seed: number; split: number[] }
  | { kind: 'flush' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('read' as const, 'write' as const, 'discard' as const, 'zero' as const),
    slot: fc.nat({ max: SECTORS / SLOT - 1 }),
    first: fc.nat({ max: SLOT - 1 }),
    count: fc.integer({ min: 1, max: SLOT }),
    seed: fc.nat({ max: 255 }),
    split: fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 4 }),
  }),
  fc.constant({ kind: 'flush' as const }),
);

/** Splits `length` into the given leading part sizes (clamped) and the rest. */
function splitLength(length: number, parts: readonly number[]): number[] {
  const out: number[] = [];
  let left = length;
  for (const p of parts) {
    if (left === 0) break;
    const n = Math.min(p, left);
    out.push(n);
    left -= n;
  }
  if (left > 0) out.push(left);
  return out;
}

describe('virtio-blk against a model disk', () => {
  it('property: random batches of requests, any framing, completed in random order, match the model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 5 }), fc.infiniteStream(fc.nat()), async (batches, order) => {
        const disk = new MemoryDisk({ size: SECTORS * 512, manual: true });
        const device = new BlkDevice({ driver: disk });
        const h = harness(device, 1 << 20);
        h.activate(device.deviceFeatures);
        const b = h.builder;
        const queue = h.queues[0]!;
        const model = new Uint8Array(SECTORS * 512);
        const picks = order[Symbol.iterator]();
        let head = 0;
        for (const batch of batches) {
          const usedSlots = new Set<number>();
          const checks: (() => void)[] = [];
          for (const o of batch) {
            const hdr = (type: number, sector: number) => b.place(encodeRequestHeader({ type, reserved: 0, sector: BigInt(sector) }));
            const status = b.reserve([1]);
            if (o.kind === 'flush') {
              queue.offer(b.chain(hdr(VIRTIO_BLK_T_FLUSH, 0), status, head++));
              checks.push(() => expect(h.memory.readU8(status[0]!.address)).toBe(VIRTIO_BLK_S_OK));
              continue;
            }
            if (usedSlots.has(o.slot)) continue;
            usedSlots.add(o.slot);
            const sector = o.slot * SLOT + Math.min(o.first, SLOT - o.count);
            const length = o.count * 512;
            const at = sector * 512;
            if (o.kind === 'read') {
              const data = b.reserve(splitLength(length, o.split));
              queue.offer(b.chain(hdr(VIRTIO_BLK_T_IN, sector), [...data, ...status], head++));
              const expected = model.slice(at, at + length);
              checks.push(() => {
                expect(h.memory.readU8(status[0]!.address)).toBe(VIRTIO_BLK_S_OK);
                expect(equalBytes(b.bytesOf(data), expected)).toBe(true);
              });
            } else if (o.kind === 'write') {
              const payload = new Uint8Array(length).map((_, i) => (i * 7 + o.seed) & 0xff);
              queue.offer(b.chain([...hdr(VIRTIO_BLK_T_OUT, sector), ...b.place(payload, splitLength(length, o.split))], status, head++));
              model.set(payload, at);
              checks.push(() => expect(h.memory.readU8(status[0]!.address)).toBe(VIRTIO_BLK_S_OK));
            } else {
              const type = o.kind === 'discard' ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_WRITE_ZEROES;
              const seg = encodeDiscardSegments([{ sector: BigInt(sector), numSectors: o.count, flags: o.kind === 'zero' ? o.seed & 1 : 0 }]);
              queue.offer(b.chain([...hdr(type, 0), ...b.place(seg, splitLength(16, o.split))], status, head++));
              model.fill(0, at, at + length); // MemoryDisk's discard zeroes
              checks.push(() => expect(h.memory.readU8(status[0]!.address)).toBe(VIRTIO_BLK_S_OK));
            }
          }
          device.queueNotify(0);
          // Complete the held operations in a random order.
          while (disk.held.length > 0) {
            const i = picks.next().value! % disk.held.length;
            disk.held.splice(i, 1)[0]!.release();
            await new Promise((resolve) => setTimeout(resolve, 0));
          }
          await device.drain();
          for (const check of checks) check();
          expect(queue.pending).toEqual([]);
          head = 0;
        }
        expect(equalBytes(disk.bytes, model)).toBe(true);
        expect(device.metrics.invalidRequests).toBe(0);
      }),
      { numRuns: 40 },
    );
  });
});
