import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeNetHdr, encodeNetHdr, VIRTIO_NET_HDR_LEGACY_SIZE, VIRTIO_NET_HDR_SIZE, type VirtioNetHdr } from './net-header.js';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const hdr: fc.Arbitrary<VirtioNetHdr> = fc.record({ flags: u8, gsoType: u8, hdrLen: u16, gsoSize: u16, csumStart: u16, csumOffset: u16, numBuffers: u16 });

describe('virtio_net_hdr (§5.1.6)', () => {
  it('round-trips every 12-byte header', () => {
    fc.assert(fc.property(hdr, (h) => {
      const out = new Uint8Array(VIRTIO_NET_HDR_SIZE);
      encodeNetHdr(h, out);
      expect(decodeNetHdr(out)).toEqual(h);
    }), { numRuns: 300 });
  });

  it('is little-endian with num_buffers at byte 10', () => {
    const out = new Uint8Array(12);
    encodeNetHdr({ flags: 1, gsoType: 4, hdrLen: 0x3412, gsoSize: 0x5a0, csumStart: 34, csumOffset: 16, numBuffers: 3 }, out);
    expect([...out]).toEqual([1, 4, 0x12, 0x34, 0xa0, 0x05, 34, 0, 16, 0, 3, 0]);
  });

  it('the legacy 10-byte form has no num_buffers (reads as 1) and leaves bytes past 10 alone', () => {
    fc.assert(fc.property(hdr, (h) => {
      const out = new Uint8Array(12).fill(0xee);
      encodeNetHdr(h, out, VIRTIO_NET_HDR_LEGACY_SIZE);
      expect(out[10]).toBe(0xee);
      expect(decodeNetHdr(out, VIRTIO_NET_HDR_LEGACY_SIZE)).toEqual({ ...h, numBuffers: 1 });
    }), { numRuns: 100 });
  });

  it('refuses a buffer shorter than the header or an unknown size', () => {
    expect(() => decodeNetHdr(new Uint8Array(11))).toThrow(RangeError);
    expect(() => decodeNetHdr(new Uint8Array(20), 20)).toThrow(RangeError);
    expect(() => encodeNetHdr({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 1 }, new Uint8Array(9), 10)).toThrow(RangeError);
  });
});
