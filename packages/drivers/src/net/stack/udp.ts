// RFC 768 "User Datagram Protocol": source port, destination port, length, checksum over the
// IPv4 pseudo-header, the header and the data.
import { DriverError } from '../../errors.js';
import { internetChecksum, pseudoHeaderSum } from './checksum.js';
import { IP_PROTOCOL_UDP } from './ipv4.js';

export const UDP_HEADER_SIZE = 8;

/** A decoded UDP datagram (`data` is a view). */
export interface UdpDatagram {
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly data: Uint8Array;
}

/**
 * Decodes a datagram carried from `source` to `destination`. Throws MALFORMED when shorter than
 * the header, when its length field is below 8 or beyond the bytes received, or when a non-zero
 * checksum fails (RFC 768: "An all zero transmitted checksum value means that the transmitter
 * generated no checksum"; RFC 1122 §4.1.3.4: a datagram with a bad checksum MUST be discarded).
 */
export function decodeUdp(bytes: Uint8Array, source: number, destination: number): UdpDatagram {
  const fail = (why: string) => new DriverError('MALFORMED', why, { protocol: 'udp', length: bytes.length });
  if (bytes.length < UDP_HEADER_SIZE) throw fail(`UDP datagram of ${bytes.length} bytes is shorter than 8`);
  const length = (bytes[4]! << 8) | bytes[5]!;
  if (length < UDP_HEADER_SIZE || length > bytes.length) throw fail(`UDP length ${length} does not fit the ${bytes.length} bytes received`);
  const datagram = bytes.subarray(0, length);
  const checksum = (bytes[6]! << 8) | bytes[7]!;
  if (checksum !== 0 && internetChecksum(datagram, pseudoHeaderSum(source, destination, IP_PROTOCOL_UDP, length)) !== 0) {
    throw fail('UDP checksum mismatch');
  }
  return { sourcePort: (bytes[0]! << 8) | bytes[1]!, destinationPort: (bytes[2]! << 8) | bytes[3]!, data: datagram.subarray(UDP_HEADER_SIZE) };
}

/**
 * Encodes a datagram with its checksum (RFC 768: a computed checksum of zero is transmitted as
 * all ones). Throws INVALID_ARGUMENT when it would exceed the 16-bit length field.
 */
export function encodeUdp(datagram: UdpDatagram, source: number, destination: number): Uint8Array {
  const length = UDP_HEADER_SIZE + datagram.data.length;
  if (length > 0xffff) throw new DriverError('INVALID_ARGUMENT', `UDP length ${length} exceeds 65535`, { protocol: 'udp', length });
  const out = new Uint8Array(length);
  out[0] = (datagram.sourcePort >>> 8) & 0xff;
  out[1] = datagram.sourcePort & 0xff;
  out[2] = (datagram.destinationPort >>> 8) & 0xff;
  out[3] = datagram.destinationPort & 0xff;
  out[4] = length >>> 8;
  out[5] = length & 0xff;
  out.set(datagram.data, UDP_HEADER_SIZE);
  const sum = internetChecksum(out, pseudoHeaderSum(source, destination, IP_PROTOCOL_UDP, length)) || 0xffff;
  out[6] = sum >>> 8;
  out[7] = sum & 0xff;
  return out;
}
