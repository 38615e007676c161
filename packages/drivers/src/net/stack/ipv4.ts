// RFC 791 "Internet Protocol": the IPv4 header. This stack sends 20-byte headers, never
// fragments, and drops received fragments (no reassembly).
import { DriverError } from '../../errors.js';
import { internetChecksum } from './checksum.js';

export const IPV4_HEADER_SIZE = 20;
export const IP_PROTOCOL_ICMP = 1;
export const IP_PROTOCOL_UDP = 17;
/** RFC 791 flags: Don't Fragment and More Fragments (in the flags/fragment-offset word). */
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
/** Largest total length the 16-bit field allows. */
export const IPV4_MAX_TOTAL_LENGTH = 0xffff;

/** A decoded IPv4 header with its payload (a view, trimmed to total length). */
export interface Ipv4Packet {
  /** Type of service / DSCP+ECN byte. */
  readonly tos: number;
  readonly identification: number;
  /** The 3 flag bits and 13-bit fragment offset (in 8-byte units), as one 16-bit word. */
  readonly flagsFragment: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly source: number;
  readonly destination: number;
  /** Options bytes (IHL > 5), kept as read. */
  readonly options: Uint8Array;
  readonly payload: Uint8Array;
}

/** What `encodeIpv4` needs (options are never sent). */
export interface Ipv4Fields {
  readonly tos?: number;
  readonly identification: number;
  /** Default DF (this stack never fragments). */
  readonly flagsFragment?: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly source: number;
  readonly destination: number;
  readonly payload: Uint8Array;
}

/** True when the packet is a fragment: MF set or a non-zero offset (RFC 791 §3.2). */
export function isFragment(packet: Pick<Ipv4Packet, 'flagsFragment'>): boolean {
  return (packet.flagsFragment & (IPV4_FLAG_MF | 0x1fff)) !== 0;
}

/**
 * Decodes and validates an IPv4 header (RFC 1122 §3.2.1.1–3.2.1.2: a datagram whose version is
 * not 4 or whose header checksum fails MUST be silently discarded). Throws MALFORMED for a short
 * buffer, a version other than 4, IHL < 5, a total length shorter than the header or longer than
 * the bytes received, or a bad header checksum. Bytes past total length (Ethernet padding) are dropped.
 */
export function decodeIpv4(bytes: Uint8Array): Ipv4Packet {
  const fail = (why: string) => new DriverError('MALFORMED', why, { protocol: 'ipv4', length: bytes.length });
  if (bytes.length < IPV4_HEADER_SIZE) throw fail(`IPv4 packet of ${bytes.length} bytes is shorter than its header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[0]! >>> 4;
  const headerLength = (bytes[0]! & 0x0f) * 4;
  if (version !== 4) throw fail(`IP version ${version}`);
  if (headerLength < IPV4_HEADER_SIZE) throw fail(`IHL ${headerLength / 4} is below 5`);
  const totalLength = v.getUint16(2);
  if (totalLength < headerLength || totalLength > bytes.length || headerLength > bytes.length) {
    throw fail(`total length ${totalLength} does not fit the ${headerLength}-byte header and the ${bytes.length} bytes received`);
  }
  if (internetChecksum(bytes.subarray(0, headerLength)) !== 0) throw fail('IPv4 header checksum mismatch');
  return {
    tos: bytes[1]!,
    identification: v.getUint16(4),
    flagsFragment: v.getUint16(6),
    ttl: bytes[8]!,
    protocol: bytes[9]!,
    source: v.getUint32(12),
    destination: v.getUint32(16),
    options: bytes.subarray(IPV4_HEADER_SIZE, headerLength),
    payload: bytes.subarray(headerLength, totalLength),
  };
}

/** Encodes a 20-byte header (with its checksum) followed by the payload. Throws INVALID_ARGUMENT past 65535 bytes. */
export function encodeIpv4(fields: Ipv4Fields): Uint8Array {
  const totalLength = IPV4_HEADER_SIZE + fields.payload.length;
  if (totalLength > IPV4_MAX_TOTAL_LENGTH) {
    throw new DriverError('INVALID_ARGUMENT', `IPv4 total length ${totalLength} exceeds 65535`, { protocol: 'ipv4', length: totalLength });
  }
  const out = new Uint8Array(totalLength);
  const v = new DataView(out.buffer);
  out[0] = 0x45;
  out[1] = (fields.tos ?? 0) & 0xff;
  v.setUint16(2, totalLength);
  v.setUint16(4, fields.identification & 0xffff);
  v.setUint16(6, (fields.flagsFragment ?? IPV4_FLAG_DF) & 0xffff);
  out[8] = fields.ttl & 0xff;
  out[9] = fields.protocol & 0xff;
  v.setUint32(12, fields.source >>> 0);
  v.setUint32(16, fields.destination >>> 0);
  v.setUint16(10, internetChecksum(out.subarray(0, IPV4_HEADER_SIZE)));
  out.set(fields.payload, IPV4_HEADER_SIZE);
  return out;
}
