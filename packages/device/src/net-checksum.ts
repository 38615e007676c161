// The Internet checksum (RFC 1071): 16-bit ones' complement of the ones' complement sum, as
// VIRTIO_NET_HDR_F_NEEDS_CSUM asks the device to compute from `csum_start` to the end of the
// packet and store at `csum_start + csum_offset` (VIRTIO 1.3 §5.1.6.2).

/**
 * Ones' complement sum of `bytes` (big-endian 16-bit words, an odd last byte padded with zero),
 * folded to 16 bits, starting from `initial`. Not complemented.
 */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const n = bytes.length;
  let i = 0;
  // Sum 16-bit words into a 32-bit accumulator, folding every 2^15 words so it cannot overflow 2^53.
  for (; i + 1 < n; i += 2) {
    sum += (bytes[i]! << 8) | bytes[i + 1]!;
    if (sum > 0x7fff_ffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  }
  if (i < n) sum += bytes[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of `bytes`: `~sum & 0xffff`. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

/**
 * Completes a partial checksum in place (§5.1.6.2 point 3): the checksum field at
 * `csumStart + csumOffset` already holds the pseudo-header sum; the ones' complement sum from
 * `csumStart` to the end replaces it. Returns false (nothing written) when the offsets do not lie
 * inside `frame`.
 */
export function completeChecksum(frame: Uint8Array, csumStart: number, csumOffset: number): boolean {
  const field = csumStart + csumOffset;
  if (csumStart >= frame.length || field + 2 > frame.length) return false;
  let csum = internetChecksum(frame.subarray(csumStart));
  // RFC 768: a UDP checksum computed as 0 is sent as 0xffff (0 means "none"); harmless for TCP,
  // where 0 and 0xffff are the same ones' complement value.
  if (csum === 0) csum = 0xffff;
  frame[field] = csum >>> 8;
  frame[field + 1] = csum & 0xff;
  return true;
}

/**
 * The partial sum of the IPv4 pseudo-header that UDP and TCP checksums cover (RFC 768, RFC 793):
 * source and destination address (uint32), zero, protocol, and the transport length.
 */
export function pseudoHeaderSum(source: number, destination: number, protocol: number, length: number): number {
  let sum = (source >>> 16) + (source & 0xffff) + (destination >>> 16) + (destination & 0xffff) + protocol + length;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
