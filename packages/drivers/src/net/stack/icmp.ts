// RFC 792 "Internet Control Message Protocol": Echo (type 8) and Echo Reply (type 0), code 0:
// type, code, checksum, identifier, sequence number, data. The checksum covers the whole message.
import { DriverError } from '../../errors.js';
import { internetChecksum } from './checksum.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_ECHO_HEADER_SIZE = 8;

/** An ICMP echo or echo reply. */
export interface IcmpEcho {
  readonly type: number;
  readonly code: number;
  readonly identifier: number;
  readonly sequence: number;
  readonly data: Uint8Array;
}

/**
 * Decodes an ICMP message as an echo/echo reply. Throws MALFORMED when shorter than 8 bytes or
 * when the checksum fails (RFC 1122 §3.2.2: an ICMP message with a bad checksum is discarded).
 * Other types decode too (their bytes 4..7 land in identifier/sequence); callers check `type`.
 */
export function decodeIcmpEcho(bytes: Uint8Array): IcmpEcho {
  if (bytes.length < ICMP_ECHO_HEADER_SIZE) {
    throw new DriverError('MALFORMED', `ICMP message of ${bytes.length} bytes is shorter than 8`, { protocol: 'icmp', length: bytes.length });
  }
  if (internetChecksum(bytes) !== 0) throw new DriverError('MALFORMED', 'ICMP checksum mismatch', { protocol: 'icmp', length: bytes.length });
  return {
    type: bytes[0]!,
    code: bytes[1]!,
    identifier: (bytes[4]! << 8) | bytes[5]!,
    sequence: (bytes[6]! << 8) | bytes[7]!,
    data: bytes.subarray(ICMP_ECHO_HEADER_SIZE),
  };
}

/** Encodes an echo or echo reply with its checksum. */
export function encodeIcmpEcho(message: IcmpEcho): Uint8Array {
  const out = new Uint8Array(ICMP_ECHO_HEADER_SIZE + message.data.length);
  out[0] = message.type & 0xff;
  out[1] = message.code & 0xff;
  out[4] = (message.identifier >>> 8) & 0xff;
  out[5] = message.identifier & 0xff;
  out[6] = (message.sequence >>> 8) & 0xff;
  out[7] = message.sequence & 0xff;
  out.set(message.data, ICMP_ECHO_HEADER_SIZE);
  const sum = internetChecksum(out);
  out[2] = sum >>> 8;
  out[3] = sum & 0xff;
  return out;
}
