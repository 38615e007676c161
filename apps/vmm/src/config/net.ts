// Text forms of the net device config: MAC and IPv4 addresses, and the host back-end spec. Pure
// parsing (the config is untrusted input): each returns undefined or a reason, never throws.
import { formatMac, isGroupAddress, parseMac } from '@virtio-ts/device';

/** A host back-end of a net device, parsed from `switch:NAME`, `tap:IFNAME` or `stream:PATH[,server=on]`. */
export type NetBackendSpec =
  /** An in-process L2 switch shared by every VM of the process that names it. */
  | { readonly kind: 'switch'; readonly name: string }
  /** A TAP interface (created when it does not exist; needs CAP_NET_ADMIN). */
  | { readonly kind: 'tap'; readonly ifname: string }
  /** QEMU's `-netdev stream` framing on a Unix socket, as client or (server=on) server. */
  | { readonly kind: 'stream'; readonly path: string; readonly server: boolean };

/** Longest switch name. */
export const MAX_SWITCH_NAME = 32;
/** Linux IFNAMSIZ − 1. */
export const MAX_IFNAME = 15;
/** Longest Unix socket path (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

/** Parses a back-end spec, or returns the reason it is not one. */
export function parseNetBackend(text: string): NetBackendSpec | string {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  switch (kind) {
    case 'switch':
      if (!/^[A-Za-z0-9_.-]+$/.test(rest) || rest.length > MAX_SWITCH_NAME) return `Expected switch:NAME (1-${MAX_SWITCH_NAME} of A-Z a-z 0-9 _ . -) but received ${JSON.stringify(text)}`;
      return { kind: 'switch', name: rest };
    case 'tap':
      if (!/^[A-Za-z0-9_.-]+$/.test(rest) || rest.length > MAX_IFNAME) return `Expected tap:IFNAME (1-${MAX_IFNAME} of A-Z a-z 0-9 _ . -) but received ${JSON.stringify(text)}`;
      return { kind: 'tap', ifname: rest };
    case 'stream': {
      const [path = '', ...options] = rest.split(',');
      let server = false;
      for (const option of options) {
        if (option === 'server=on' || option === 'server') server = true;
        else if (option === 'server=off') server = false;
        else return `Expected stream:PATH[,server=on|off] but received the option ${JSON.stringify(option)}`;
      }
      if (path.length === 0 || new TextEncoder().encode(path).length > MAX_SOCKET_PATH || path.includes('\0')) {
        return `Expected stream:PATH with a Unix socket path of 1-${MAX_SOCKET_PATH} bytes but received ${JSON.stringify(text)}`;
      }
      return { kind: 'stream', path, server };
    }
    default:
      return `Expected switch:NAME, tap:IFNAME or stream:PATH[,server=on] but received ${JSON.stringify(text)}`;
  }
}

/** Parses `aa:bb:cc:dd:ee:ff` into six bytes, or returns the reason it is not a station address. */
export function parseMacAddress(text: string): Uint8Array | string {
  if (!/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(text)) return `Expected a MAC address such as "52:54:00:12:34:56" but received ${JSON.stringify(text)}`;
  const bytes = parseMac(text);
  if (isGroupAddress(bytes)) return `Expected a unicast MAC address (bit 0 of the first byte clear) but received ${JSON.stringify(text)}`;
  if (bytes.every((b) => b === 0)) return 'Expected a MAC address other than 00:00:00:00:00:00';
  return bytes;
}

/** Six bytes as `aa:bb:cc:dd:ee:ff`. */
export function formatMacAddress(bytes: Uint8Array): string {
  return formatMac(bytes);
}

/** An IPv4 interface address with its prefix (`10.0.0.1/24`). */
export interface Ipv4Cidr {
  /** The address as an unsigned 32-bit number. */
  readonly address: number;
  readonly prefixLength: number;
}

/** Parses a dotted IPv4 address, or returns undefined. */
export function parseIpv4Address(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((a, p) => a * 256 + Number(p), 0);
}

/** A 32-bit address as dotted text. */
export function formatIpv4Address(address: number): string {
  return [24, 16, 8, 0].map((shift) => (address >>> shift) & 0xff).join('.');
}

/**
 * Parses an interface address `A.B.C.D/P` (P 8..30), or returns the reason it is not one: a host
 * address of its subnet, not the network or broadcast address, not 0.x, loopback, multicast or
 * reserved.
 */
export function parseIpv4Cidr(text: string): Ipv4Cidr | string {
  const slash = text.indexOf('/');
  const address = parseIpv4Address(slash < 0 ? text : text.slice(0, slash));
  const prefixText = slash < 0 ? '24' : text.slice(slash + 1);
  if (address === undefined || !/^\d{1,2}$/.test(prefixText)) return `Expected an IPv4 address such as "10.0.0.1/24" but received ${JSON.stringify(text)}`;
  const prefixLength = Number(prefixText);
  if (prefixLength < 8 || prefixLength > 30) return `Expected a prefix length in [8, 30] but received ${prefixLength}`;
  const first = address >>> 24;
  if (first === 0 || first === 127 || first >= 224) return `Expected a unicast host address but received ${JSON.stringify(text)}`;
  const hostMask = 2 ** (32 - prefixLength) - 1;
  const host = address % (hostMask + 1);
  if (host === 0 || host === hostMask) return `Expected a host address of the subnet, not its network or broadcast address, but received ${JSON.stringify(text)}`;
  return { address, prefixLength };
}

/** `address` moved by `offset` hosts inside its subnet (for `--vms N` copies), or undefined when it leaves the host range. */
export function offsetIpv4Cidr(cidr: Ipv4Cidr, offset: number): Ipv4Cidr | undefined {
  const size = 2 ** (32 - cidr.prefixLength);
  const network = cidr.address - (cidr.address % size);
  const host = (cidr.address % size) + offset;
  if (host <= 0 || host >= size - 1) return undefined;
  return { address: network + host, prefixLength: cidr.prefixLength };
}

/** `Ipv4Cidr` as `A.B.C.D/P`. */
export function formatIpv4Cidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4Address(cidr.address)}/${cidr.prefixLength}`;
}

/**
 * The raw config of VM `vm` with the defaults that depend on its place in the run: net device n
 * without `mac` gets 52:54:00:12:(34+n):(56+vm), without `ip` 10.0.n.(vm+1)/24 — so VMs on one
 * switch never collide by default. Anything else is left for the schema to judge.
 */
export function withNetDefaults(raw: unknown, vm: number): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const devices = (raw as { devices?: unknown }).devices;
  if (!Array.isArray(devices)) return raw;
  let n = 0;
  const filled = devices.map((device: unknown) => {
    if (typeof device !== 'object' || device === null || (device as { type?: unknown }).type !== 'net') return device;
    const net = n++;
    const d = device as Record<string, unknown>;
    return {
      ...d,
      ...(d.mac === undefined ? { mac: formatMacAddress(Uint8Array.of(0x52, 0x54, 0x00, 0x12, (0x34 + net) & 0xff, (0x56 + vm) & 0xff)) } : {}),
      ...(d.ip === undefined && net < 256 && vm < 253 ? { ip: `10.0.${net}.${vm + 1}/24` } : {}),
    };
  });
  return { ...(raw as Record<string, unknown>), devices: filled };
}
