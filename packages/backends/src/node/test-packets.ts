// Small Ethernet/ARP/IPv4/ICMP/UDP builders and parsers for the net back-end tests (not exported
// from the package): enough to talk to a Linux network namespace through a TAP or a QEMU peer.

import { internetChecksum } from '@virtio-ts/device';

/** A MAC or IPv4 address as bytes. */
export type Bytes = readonly number[];

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const BROADCAST_MAC: Bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

export function parseIp(text: string): Bytes {
  return text.split('.').map(Number);
}

export function parseMac(text: string): Bytes {
  return text.split(':').map((x) => parseInt(x, 16));
}

export function formatMac(bytes: Uint8Array | Bytes): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** RFC 1071 checksum (complemented) of `bytes`, starting from the uncomplemented sum `initial`. */
export const checksum = internetChecksum;

function ethernet(dst: Bytes, src: Bytes, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

/** An ARP request "who has `targetIp`? tell `senderIp`" (or a reply with `op: 2`). */
export function arp(op: 1 | 2, senderMac: Bytes, senderIp: Bytes, targetMac: Bytes, targetIp: Bytes, dst: Bytes = BROADCAST_MAC): Uint8Array {
  const p = new Uint8Array(28);
  p.set([0, 1, 0x08, 0x00, 6, 4, 0, op], 0);
  p.set(senderMac, 8);
  p.set(senderIp, 14);
  p.set(targetMac, 18);
  p.set(targetIp, 24);
  return ethernet(dst, senderMac, ETH_P_ARP, p);
}

export interface ArpPacket {
  readonly op: number;
  readonly senderMac: string;
  readonly senderIp: string;
  readonly targetIp: string;
}

export function parseArp(frame: Uint8Array): ArpPacket | undefined {
  if (frame.length < 42 || ((frame[12]! << 8) | frame[13]!) !== ETH_P_ARP) return undefined;
  return {
    op: (frame[20]! << 8) | frame[21]!,
    senderMac: formatMac(frame.subarray(22, 28)),
    senderIp: [...frame.subarray(28, 32)].join('.'),
    targetIp: [...frame.subarray(38, 42)].join('.'),
  };
}

function ipv4(src: Bytes, dst: Bytes, protocol: number, payload: Uint8Array, id = 1): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const total = p.length;
  p.set([0x45, 0, total >> 8, total & 0xff, id >> 8, id & 0xff, 0x40, 0, 64, protocol, 0, 0], 0);
  p.set(src, 12);
  p.set(dst, 16);
  const sum = checksum(p.subarray(0, 20));
  p[10] = sum >> 8;
  p[11] = sum & 0xff;
  p.set(payload, 20);
  return p;
}

/** An ICMP echo request frame. */
export function icmpEcho(srcMac: Bytes, dstMac: Bytes, srcIp: Bytes, dstIp: Bytes, ident: number, seq: number, data = 'virtio-ts'): Uint8Array {
  const body = new TextEncoder().encode(data);
  const icmp = new Uint8Array(8 + body.length);
  icmp.set([8, 0, 0, 0, ident >> 8, ident & 0xff, seq >> 8, seq & 0xff], 0);
  icmp.set(body, 8);
  const sum = checksum(icmp);
  icmp[2] = sum >> 8;
  icmp[3] = sum & 0xff;
  return ethernet(dstMac, srcMac, ETH_P_IP, ipv4(srcIp, dstIp, 1, icmp));
}

export interface Ipv4Packet {
  readonly protocol: number;
  readonly src: string;
  readonly dst: string;
  /** The IP payload (ICMP/UDP/TCP header onward). */
  readonly payload: Uint8Array;
  /** Offset of the payload in the frame. */
  readonly payloadOffset: number;
}

export function parseIpv4(frame: Uint8Array): Ipv4Packet | undefined {
  if (frame.length < 34 || ((frame[12]! << 8) | frame[13]!) !== ETH_P_IP || frame[14]! >> 4 !== 4) return undefined;
  const ihl = (frame[14]! & 0xf) * 4;
  const total = (frame[16]! << 8) | frame[17]!;
  return {
    protocol: frame[23]!,
    src: [...frame.subarray(26, 30)].join('.'),
    dst: [...frame.subarray(30, 34)].join('.'),
    payload: frame.subarray(14 + ihl, 14 + total),
    payloadOffset: 14 + ihl,
  };
}

/**
 * A UDP datagram whose checksum field holds only the pseudo-header sum, as a stack leaves it for
 * checksum offload (VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start = 34, csum_offset = 6).
 */
export function udpPartial(srcMac: Bytes, dstMac: Bytes, srcIp: Bytes, dstIp: Bytes, srcPort: number, dstPort: number, data: string): { frame: Uint8Array; csumStart: number; csumOffset: number } {
  const body = new TextEncoder().encode(data);
  const udp = new Uint8Array(8 + body.length);
  const len = udp.length;
  udp.set([srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, len >> 8, len & 0xff, 0, 0], 0);
  udp.set(body, 8);
  const pseudo = new Uint8Array([...srcIp, ...dstIp, 0, 17, len >> 8, len & 0xff]);
  const partial = ~checksum(pseudo) & 0xffff;
  udp[6] = partial >> 8;
  udp[7] = partial & 0xff;
  return { frame: ethernet(dstMac, srcMac, ETH_P_IP, ipv4(srcIp, dstIp, 17, udp)), csumStart: 34, csumOffset: 6 };
}
