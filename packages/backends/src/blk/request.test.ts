import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '@virtio-ts/memory';
import { ChainBuilder } from '../testing/chain-builder.js';
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES } from './constants.js';
import {
  decodeDiscardSegments,
  decodeRequestHeader,
  encodeDiscardSegments,
  encodeRequestHeader,
  parseRequest,
  type RequestLimits,
} from './request.js';

const limits: RequestLimits = {
  capacitySectors: 1 << 20,
  readOnly: false,
  alignment: 512,
  maxDataBytes: 1 << 20,
  flush: true,
  discard: true,
  writeZeroes: true,
  maxDiscardSeg: 16,
  maxDiscardSectors: 1 << 16,
  maxWriteZeroesSeg: 16,
  maxWriteZeroesSectors: 1 << 16,
};

/** Random split of `length` bytes into 1..8 positive parts. */
const splitOf = (length: number) =>
  fc.array(fc.integer({ min: 1, max: Math.max(1, length) }), { minLength: 0, maxLength: 7 }).map((cuts) => {
    const points = [...new Set(cuts.filter((c) => c < length))].sort((a, b) => a - b);
    const parts: number[] = [];
    let last = 0;
    for (const p of points) {
      parts.push(p - last);
      last = p;
    }
    parts.push(length - last);
    return parts;
  });

describe('blk request codec (§5.2.6)', () => {
  it('property: request header encode/decode round-trips', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff_ffff }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (type, reserved, sector) => {
        expect(decodeRequestHeader(encodeRequestHeader({ type, reserved, sector }))).toEqual({ type, reserved, sector });
      }),
      { numRuns: 300 },
    );
  });

  it('property: discard/write-zeroes segments encode/decode round-trips', () => {
    const segment = fc.record({ sector: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), numSectors: fc.nat({ max: 0xffff_ffff }), flags: fc.nat({ max: 0xffff_ffff }) });
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 20 }), (segments) => {
        const bytes = encodeDiscardSegments(segments);
        expect(bytes.length).toBe(segments.length * 16);
        expect(decodeDiscardSegments(bytes)).toEqual(segments);
      }),
      { numRuns: 200 },
    );
  });

  it('property: a header split anywhere across descriptors parses to the same request (§2.6.4 free framing)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT),
        fc.nat({ max: 1000 }),
        fc.integer({ min: 1, max: 4 }),
        splitOf(16),
        (type, sector, sectors, headerSplit) => {
          const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
          const b = new ChainBuilder(memory);
          const header = b.place(encodeRequestHeader({ type, reserved: 0, sector: BigInt(sector) }), headerSplit);
          const length = sectors * 512;
          const data = type === VIRTIO_BLK_T_IN ? b.reserve([length]) : b.place(new Uint8Array(length));
          const chain = type === VIRTIO_BLK_T_IN ? b.chain(header, [...data, ...b.reserve([1])]) : b.chain([...header, ...data], b.reserve([1]));
          const parsed = parseRequest(memory, chain, limits);
          expect(parsed.kind).toBe('request');
          if (parsed.kind !== 'request') return;
          expect(parsed.request).toMatchObject({ type: type === VIRTIO_BLK_T_IN ? 'in' : 'out', sector, dataLength: length });
        },
      ),
      { numRuns: 100 },
    );
  });

  it('property: parseRequest never throws on arbitrary header bytes and segment payloads', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.nat({ max: 600 }), (readable, writable) => {
        const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]);
        const b = new ChainBuilder(memory, 0x1000);
        const chain = b.chain(readable.length > 0 ? b.place(readable) : [], writable > 0 ? b.reserve([writable]) : []);
        const parsed = parseRequest(memory, chain, limits);
        expect(['request', 'fault']).toContain(parsed.kind);
        if (parsed.kind === 'fault') expect(parsed.statusAddress === null).toBe(writable === 0);
      }),
      { numRuns: 300 },
    );
  });

  it('5.2.6: the write-zeroes unmap flag is decoded per segment', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]);
    const b = new ChainBuilder(memory, 0x1000);
    const segs = encodeDiscardSegments([
      { sector: 1n, numSectors: 2, flags: 1 },
      { sector: 9n, numSectors: 1, flags: 0 },
    ]);
    const chain = b.chain([...b.place(encodeRequestHeader({ type: VIRTIO_BLK_T_WRITE_ZEROES, reserved: 0, sector: 0n })), ...b.place(segs)], b.reserve([1]));
    const parsed = parseRequest(memory, chain, limits);
    expect(parsed).toMatchObject({
      kind: 'request',
      request: { type: 'write-zeroes', ranges: [{ sector: 1, numSectors: 2, unmap: true }, { sector: 9, numSectors: 1, unmap: false }] },
    });
  });
});
