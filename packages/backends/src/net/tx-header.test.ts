import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, type VirtioNetHdr } from '@virtio-ts/device';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkTxHeader, type TxOffloads } from './tx-header.js';

const NONE: TxOffloads = { csum: false, tso4: false, tso6: false, ufo: false, ecn: false };
const ALL: TxOffloads = { csum: true, tso4: true, tso6: true, ufo: true, ecn: true };

const arbitraryHeader = fc.record({
  flags: fc.integer({ min: 0, max: 255 }),
  gsoType: fc.integer({ min: 0, max: 255 }),
  hdrLen: fc.integer({ min: 0, max: 0xffff }),
  gsoSize: fc.integer({ min: 0, max: 0xffff }),
  csumStart: fc.integer({ min: 0, max: 0xffff }),
  csumOffset: fc.integer({ min: 0, max: 0xffff }),
  numBuffers: fc.integer({ min: 0, max: 0xffff }),
}) satisfies fc.Arbitrary<VirtioNetHdr>;

describe('transmit header checks (§5.1.6.2)', () => {
  it('property (hostile headers): an accepted header never points outside the frame, and GSO only as negotiated', () => {
    fc.assert(
      fc.property(arbitraryHeader, fc.integer({ min: 14, max: 70000 }), fc.boolean(), (h, length, all) => {
        const offloads = all ? ALL : NONE;
        const fault = checkTxHeader(h, length, offloads);
        if (fault !== null) return;
        if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) expect(h.csumStart + h.csumOffset + 2).toBeLessThanOrEqual(length);
        const gso = h.gsoType & 0x7f;
        if (gso !== 0) {
          expect(all).toBe(true);
          expect([1, 3, 4]).toContain(gso);
          expect(h.gsoSize).toBeGreaterThan(0);
          expect(h.hdrLen).toBeLessThanOrEqual(length);
          expect(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
        }
        if ((h.gsoType & 0x80) !== 0) expect(all).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('5.1.6.2.2: a valid TSO header is accepted when HOST_TSO4 was negotiated, refused otherwise', () => {
    const h: VirtioNetHdr = { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: 0 };
    expect(checkTxHeader(h, 10000, ALL)).toBeNull();
    expect(checkTxHeader(h, 10000, { ...ALL, tso4: false })).toBe('TX_BAD_GSO');
    expect(checkTxHeader(h, 10000, NONE)).toBe('TX_BAD_GSO');
  });
});
