// 48-bit IEEE 802 MAC addresses as the virtio-net device handles them (VIRTIO 1.3 §5.1.4 `mac`,
// §5.1.6.5.2 MAC filtering): parse, format, and classify a destination address.

/** Bytes of a MAC address. */
export const MAC_BYTES = 6;

/**
 * Parses `aa:bb:cc:dd:ee:ff` (or with `-`) into 6 bytes; a Uint8Array of 6 bytes is copied.
 * Throws RangeError for anything else.
 */
export function parseMac(value: string | Uint8Array): Uint8Array {
  if (value instanceof Uint8Array) {
    if (value.length !== MAC_BYTES) throw new RangeError(`a MAC address has 6 bytes, got ${value.length}`);
    return Uint8Array.from(value);
  }
  const parts = value.split(/[:-]/);
  if (parts.length !== MAC_BYTES || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new RangeError(`not a MAC address: ${JSON.stringify(value)}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** `aa:bb:cc:dd:ee:ff` (lower case) of the 6 bytes at `offset`. */
export function formatMac(bytes: Uint8Array, offset = 0): string {
  const out: string[] = [];
  for (let i = 0; i < MAC_BYTES; i++) out.push((bytes[offset + i] ?? 0).toString(16).padStart(2, '0'));
  return out.join(':');
}

/** True when the 6 bytes at `offset` are ff:ff:ff:ff:ff:ff. */
export function isBroadcast(bytes: Uint8Array, offset = 0): boolean {
  for (let i = 0; i < MAC_BYTES; i++) if (bytes[offset + i] !== 0xff) return false;
  return true;
}

/** True when the group bit (I/G, bit 0 of the first byte) is set: multicast or broadcast. */
export function isGroupAddress(bytes: Uint8Array, offset = 0): boolean {
  return ((bytes[offset] ?? 0) & 1) === 1;
}

/** True when the 6 bytes at `offsetA` of `a` equal those at `offsetB` of `b`. */
export function sameMac(a: Uint8Array, offsetA: number, b: Uint8Array, offsetB = 0): boolean {
  for (let i = 0; i < MAC_BYTES; i++) if (a[offsetA + i] !== b[offsetB + i]) return false;
  return true;
}
