// Validation of the virtio_net_hdr a driver puts before each transmitted frame (VIRTIO 1.3
// §5.1.6.2, device requirements §5.1.6.2.2). The header is guest input: every offset is checked
// against the frame before anything uses it.
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  type VirtioNetHdr,
} from '@virtio-ts/device';
import type { NetFault } from './errors.js';

/** Bytes of an Ethernet header (destination, source, EtherType). */
export const ETH_HLEN = 14;
/** An 802.1Q tag, allowed on top of the MTU. */
export const VLAN_HLEN = 4;
/**
 * Largest frame with GSO (§5.1.6.3: "the maximum incoming packet will be 65589 bytes long": 14
 * bytes of Ethernet header, 40 of IPv6 header, 65535 of payload), plus a VLAN tag.
 */
export const MAX_GSO_FRAME = 65589 + VLAN_HLEN;

/** The HOST_* offloads the driver negotiated (what it may ask of the device on transmit). */
export interface TxOffloads {
  /** VIRTIO_NET_F_CSUM */
  readonly csum: boolean;
  /** VIRTIO_NET_F_HOST_TSO4 / TSO6 / UFO / ECN */
  readonly tso4: boolean;
  readonly tso6: boolean;
  readonly ufo: boolean;
  readonly ecn: boolean;
}

/**
 * Checks a transmit header against the frame length and the negotiated offloads. Returns the
 * fault, or null when the frame may be sent. A NEEDS_CSUM header without VIRTIO_NET_F_CSUM (the
 * driver MUST NOT, §5.1.6.2.1) passes here when its offsets are valid: the device then completes
 * the checksum itself rather than send a frame with a wrong one.
 *
 * §5.1.6.2.2: the device "MUST ignore flag bits that it does not recognize" and "MUST NOT rely on
 * hdr_len to be correct"; hdr_len past the frame is still refused for GSO, where a back-end would
 * use it to cut the frame.
 */
export function checkTxHeader(hdr: VirtioNetHdr, frameLength: number, offloads: TxOffloads): NetFault | null {
  const needsCsum = (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
  const gso = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
  const ecn = (hdr.gsoType & VIRTIO_NET_HDR_GSO_ECN) !== 0;
  if (gso !== VIRTIO_NET_HDR_GSO_NONE) {
    // §5.1.6.2.1: the driver MUST NOT set a gso_type whose HOST_* feature it did not negotiate.
    const allowed =
      (gso === VIRTIO_NET_HDR_GSO_TCPV4 && offloads.tso4) || (gso === VIRTIO_NET_HDR_GSO_TCPV6 && offloads.tso6) || (gso === VIRTIO_NET_HDR_GSO_UDP && offloads.ufo);
    if (!allowed) return 'TX_BAD_GSO';
    // "If gso_type differs from VIRTIO_NET_HDR_GSO_NONE, then the driver MUST also set the
    // VIRTIO_NET_HDR_F_NEEDS_CSUM bit in flags and MUST set gso_size".
    if (!needsCsum || hdr.gsoSize === 0 || hdr.hdrLen > frameLength) return 'TX_BAD_GSO';
  }
  if (ecn && !offloads.ecn) return 'TX_BAD_GSO';
  if (needsCsum && (hdr.csumStart >= frameLength || hdr.csumStart + hdr.csumOffset + 2 > frameLength)) return 'TX_BAD_CSUM';
  return null;
}
