// RFC 826 "An Ethernet Address Resolution Protocol", for Ethernet (hardware type 1) and IPv4
// (protocol type 0x0800): 28 bytes on the wire.
import { DriverError } from '../../errors.js';
import type { MacAddress } from './addresses.js';
import { ETHERTYPE_IPV4 } from './ethernet.js';

export const ARP_PACKET_SIZE = 28;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

/** An Ethernet/IPv4 ARP packet. */
export interface ArpPacket {
  /** ar$op: 1 request, 2 reply. */
  readonly operation: number;
  /** ar$sha / ar$spa */
  readonly senderMac: MacAddress;
  readonly senderIp: number;
  /** ar$tha / ar$tpa */
  readonly targetMac: MacAddress;
  readonly targetIp: number;
}

/**
 * Decodes an ARP packet. Throws MALFORMED when it is truncated or is not Ethernet/IPv4 (RFC 826:
 * "?Do I have the hardware type in ar$hrd? ... ?Do I speak the protocol in ar$pro?" — if not, discard).
 * Trailing bytes (Ethernet padding) are ignored.
 */
export function decodeArp(bytes: Uint8Array): ArpPacket {
  if (bytes.length < ARP_PACKET_SIZE) {
    throw new DriverError('MALFORMED', `ARP packet of ${bytes.length} bytes is shorter than 28`, { protocol: 'arp', length: bytes.length });
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, ARP_PACKET_SIZE);
  if (v.getUint16(0) !== ARP_HTYPE_ETHERNET || v.getUint16(2) !== ETHERTYPE_IPV4 || v.getUint8(4) !== 6 || v.getUint8(5) !== 4) {
    throw new DriverError('MALFORMED', 'ARP packet is not Ethernet/IPv4', { protocol: 'arp', length: bytes.length });
  }
  return {
    operation: v.getUint16(6),
    senderMac: bytes.slice(8, 14),
    senderIp: v.getUint32(14),
    targetMac: bytes.slice(18, 24),
    targetIp: v.getUint32(24),
  };
}

/** Encodes an Ethernet/IPv4 ARP packet (28 bytes). */
export function encodeArp(packet: ArpPacket): Uint8Array {
  const out = new Uint8Array(ARP_PACKET_SIZE);
  const v = new DataView(out.buffer);
  v.setUint16(0, ARP_HTYPE_ETHERNET);
  v.setUint16(2, ETHERTYPE_IPV4);
  v.setUint8(4, 6);
  v.setUint8(5, 4);
  v.setUint16(6, packet.operation & 0xffff);
  out.set(packet.senderMac.subarray(0, 6), 8);
  v.setUint32(14, packet.senderIp >>> 0);
  out.set(packet.targetMac.subarray(0, 6), 18);
  v.setUint32(24, packet.targetIp >>> 0);
  return out;
}
