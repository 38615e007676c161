// Frame and command builders shared by the net tests (not part of the package's API).
import { encodeNetHdr, plainNetHdr, type VirtioNetHdr, parseMac } from '@virtio-ts/device';

export const OWN = '52:54:00:12:34:56';
export const PEER = '52:54:00:aa:bb:cc';
export const BROADCAST = 'ff:ff:ff:ff:ff:ff';

/** An Ethernet frame to `dst` of `length` bytes in all (≥ 14), payload bytes from `seed`. */
export function frameTo(dst: string, length: number, seed = 1, etherType = 0x0800): Uint8Array {
  const f = new Uint8Array(length);
  f.set(parseMac(dst), 0);
  f.set(parseMac(PEER), 6);
  f[12] = etherType >>> 8;
  f[13] = etherType & 0xff;
  for (let i = 14; i < length; i++) f[i] = (i * 31 + seed * 7) & 0xff;
  return f;
}

/** The 12-byte header with the given fields (the rest zero). */
export function hdr(fields: Partial<VirtioNetHdr> = {}, size = 12): Uint8Array {
  const out = new Uint8Array(size);
  encodeNetHdr({ ...plainNetHdr(), numBuffers: 0, ...fields }, out, size);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A control command: class, command, data. */
export function ctrlCommand(cls: number, command: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat(Uint8Array.of(cls, command), data);
}

/** MAC_TABLE_SET data: le32 count + unicast MACs, le32 count + multicast MACs. */
export function macTable(unicast: readonly string[], multicast: readonly string[], counts?: { unicast?: number; multicast?: number }): Uint8Array {
  const le32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    return b;
  };
  return concat(le32(counts?.unicast ?? unicast.length), ...unicast.map((m) => parseMac(m)), le32(counts?.multicast ?? multicast.length), ...multicast.map((m) => parseMac(m)));
}

/**
 * A UDP/IPv4 frame with a partial checksum (the pseudo-header sum in the UDP checksum field),
 * as a driver with VIRTIO_NET_F_CSUM sends it. Returns the frame and csum_start/csum_offset.
 */
export function partialUdpFrame(payloadLength: number): { frame: Uint8Array; csumStart: number; csumOffset: number } {
  const ipLength = 20 + 8 + payloadLength;
  const f = frameTo(PEER, 14 + ipLength, 3);
  const v = new DataView(f.buffer);
  f[14] = 0x45;
  f[15] = 0;
  v.setUint16(16, ipLength);
  v.setUint32(18, 0);
  f[22] = 64;
  f[23] = 17; // UDP
  v.setUint16(24, 0);
  f.set([10, 0, 0, 1], 26);
  f.set([10, 0, 0, 2], 30);
  v.setUint16(34, 1234);
  v.setUint16(36, 5678);
  v.setUint16(38, 8 + payloadLength);
  // Pseudo header: src, dst, zero+proto, UDP length, folded, not complemented.
  let sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 8 + payloadLength;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(40, sum);
  return { frame: f, csumStart: 34, csumOffset: 6 };
}

/** True when the UDP checksum of a frame from {@link partialUdpFrame} verifies. */
export function udpChecksumValid(f: Uint8Array): boolean {
  const v = new DataView(f.buffer, f.byteOffset, f.length);
  const udpLength = v.getUint16(38);
  let sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + udpLength;
  for (let i = 34; i < 34 + udpLength; i += 2) sum += (f[i]! << 8) | (i + 1 < 34 + udpLength ? f[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}
