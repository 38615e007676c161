// Ethernet II framing (IEEE 802.3 §3.2 with the DIX type field): destination, source, EtherType,
// payload. The FCS is not carried (virtio-net frames never include it, VIRTIO 1.3 §5.1.6).
import { DriverError } from '../../errors.js';
import type { MacAddress } from './addresses.js';

export const ETHERNET_HEADER_SIZE = 14;
/** Smallest frame on the wire without FCS (64 bytes minus 4); shorter frames are padded with zeros. */
export const ETHERNET_MIN_FRAME = 60;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
/** IEEE 802 "Local Experimental EtherType 1": what `runNetBench` sends. */
export const ETHERTYPE_EXPERIMENTAL = 0x88b5;

/** A decoded Ethernet II frame; `payload` is a view into the frame (may include padding). */
export interface EthernetFrame {
  readonly destination: MacAddress;
  readonly source: MacAddress;
  /** EtherType (≥ 0x0600); values ≤ 1500 are 802.3 lengths and are refused by `decodeEthernet`. */
  readonly etherType: number;
  readonly payload: Uint8Array;
}

/** Decodes a frame. Throws MALFORMED for a runt (< 14 bytes) or an 802.3 length field instead of an EtherType. */
export function decodeEthernet(frame: Uint8Array): EthernetFrame {
  if (frame.length < ETHERNET_HEADER_SIZE) {
    throw new DriverError('MALFORMED', `Ethernet frame of ${frame.length} bytes is shorter than its header`, { protocol: 'ethernet', length: frame.length });
  }
  const etherType = (frame[12]! << 8) | frame[13]!;
  if (etherType < 0x0600) {
    throw new DriverError('MALFORMED', `802.3 length/type ${etherType} is not an Ethernet II EtherType`, { protocol: 'ethernet', length: frame.length });
  }
  return { destination: frame.subarray(0, 6), source: frame.subarray(6, 12), etherType, payload: frame.subarray(ETHERNET_HEADER_SIZE) };
}

/**
 * Encodes a frame: header then payload, zero-padded to the 60-byte minimum (IEEE 802.3 §3.2.7
 * "pad" field) unless `pad` is false.
 */
export function encodeEthernet(frame: Omit<EthernetFrame, 'payload'> & { readonly payload: Uint8Array }, pad = true): Uint8Array {
  const length = ETHERNET_HEADER_SIZE + frame.payload.length;
  const out = new Uint8Array(pad ? Math.max(ETHERNET_MIN_FRAME, length) : length);
  out.set(frame.destination.subarray(0, 6), 0);
  out.set(frame.source.subarray(0, 6), 6);
  out[12] = (frame.etherType >>> 8) & 0xff;
  out[13] = frame.etherType & 0xff;
  out.set(frame.payload, ETHERNET_HEADER_SIZE);
  return out;
}
