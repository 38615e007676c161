/**
 * The 8-byte LUN field of virtio-scsi requests (VIRTIO 1.3 §5.6.6.1): byte 0 is 1, byte 1 the
 * target, bytes 2..3 the LUN in single-level flat space (0x40) or peripheral (0x00) addressing,
 * bytes 4..7 zero.
 */
export interface LunAddress {
  readonly target: number;
  readonly lun: number;
}

/** Decodes a LUN field; undefined when it does not follow §5.6.6.1. */
export function decodeLunAddress(bytes: Uint8Array): LunAddress | undefined {
  if (bytes.length < 8 || bytes[0] !== 1) return undefined;
  const method = bytes[2]! >> 6;
  if (method !== 0 && method !== 1) return undefined;
  if (method === 0 && bytes[2] !== 0) return undefined; // peripheral: bus 0
  if (bytes[4] !== 0 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) return undefined;
  return { target: bytes[1]!, lun: ((bytes[2]! & 0x3f) << 8) | bytes[3]! };
}

/** Encodes a LUN field the way Linux's virtio_scsi does (flat space addressing). */
export function encodeLunAddress(address: LunAddress): Uint8Array {
  return Uint8Array.of(1, address.target & 0xff, 0x40 | ((address.lun >> 8) & 0x3f), address.lun & 0xff, 0, 0, 0, 0);
}
