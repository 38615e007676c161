import { formatMac as formatDeviceMac, parseMac as parseDeviceMac } from '@virtio-ts/device';
import { DriverError } from '../../errors.js';

// IPv4 addresses are uint32 numbers inside the stack (network order as a number: 10.0.0.1 is
// 0x0a000001); MAC addresses are 6-byte arrays. The public API also takes the text forms.

/** A 48-bit IEEE 802 MAC address (6 bytes). */
export type MacAddress = Uint8Array;

/** ff:ff:ff:ff:ff:ff (treat as read-only: typed arrays cannot be frozen). */
export const BROADCAST_MAC: MacAddress = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Parses `a.b.c.d` into a uint32. Throws INVALID_ARGUMENT. */
export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) {
    throw new DriverError('INVALID_ARGUMENT', `not a dotted IPv4 address: ${JSON.stringify(text)}`, { protocol: 'ipv4' });
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
}

/** An IPv4 address as a uint32, from its text form or the number itself. */
export function toIpv4(address: string | number): number {
  if (typeof address === 'string') return parseIpv4(address);
  if (!Number.isInteger(address) || address < 0 || address > 0xffffffff) {
    throw new DriverError('INVALID_ARGUMENT', `not an IPv4 address: ${address}`, { protocol: 'ipv4' });
  }
  return address;
}

/** `a.b.c.d`. */
export function formatIpv4(address: number): string {
  return [address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff].join('.');
}

/** The netmask of a prefix length (0..32) as a uint32. */
export function prefixMask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** Parses `aa:bb:cc:dd:ee:ff` (or with `-`). Throws INVALID_ARGUMENT. */
export function parseMac(text: string): MacAddress {
  try {
    return parseDeviceMac(text);
  } catch (cause) {
    throw new DriverError('INVALID_ARGUMENT', `not a MAC address: ${JSON.stringify(text)}`, { protocol: 'ethernet' }, { cause });
  }
}

/** `aa:bb:cc:dd:ee:ff` (lower case). */
export function formatMac(mac: Uint8Array): string {
  return formatDeviceMac(mac);
}

/** Byte equality of two MAC addresses. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** IEEE 802: the group bit (least significant bit of the first octet) marks multicast and broadcast. */
export function isMulticastMac(mac: Uint8Array): boolean {
  return (mac[0]! & 1) === 1;
}
