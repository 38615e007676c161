// RFC 1071 "Computing the Internet Checksum": the 16-bit one's complement of the one's complement
// sum of the data taken as big-endian 16-bit words; an odd final byte is padded with a zero byte.

/**
 * The one's complement sum (not yet complemented) of `bytes`, folded to 16 bits, added to
 * `initial` (a partial sum, e.g. of a pseudo-header). RFC 1071 §2 (A): the sum is independent of
 * how the data is split, as long as every part but the last has an even length.
 */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (even !== bytes.length) sum += bytes[even]! << 8; // RFC 1071: pad an odd byte with zero
  // Deferred carries (RFC 1071 §2 (C)): fold until it fits 16 bits.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of `bytes` (plus a partial sum `initial`): ~sum, 16 bits. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

/**
 * The partial sum of the IPv4 pseudo-header UDP and TCP checksums cover (RFC 768, RFC 793):
 * source and destination address, zero, protocol, and the transport length.
 */
export function pseudoHeaderSum(source: number, destination: number, protocol: number, length: number): number {
  let sum = (source >>> 16) + (source & 0xffff) + (destination >>> 16) + (destination & 0xffff) + protocol + length;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
