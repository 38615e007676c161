/**
 * Refcount block entry codecs for every width 1..64 bits (qcow2 spec, "Host cluster management":
 * refcount_bits = 1 << refcount_order; sub-byte widths pack from the least significant bit).
 * 64-bit refcounts above 2^53 - 1 read as Number.MAX_SAFE_INTEGER (such a count cannot be real).
 */

/** Refcount entries per block of `clusterSize` bytes. */
export function refcountEntriesPerBlock(clusterBits: number, refcountOrder: number): number {
  return 2 ** (clusterBits + 3 - refcountOrder);
}

/** Largest refcount representable with `refcountOrder`. */
export function maxRefcount(refcountOrder: number): number {
  return refcountOrder === 6 ? Number.MAX_SAFE_INTEGER : 2 ** (1 << refcountOrder) - 1;
}

/** Reads entry `index` of a refcount block. */
export function getRefcountEntry(block: Uint8Array, view: DataView, index: number, refcountOrder: number): number {
  switch (refcountOrder) {
    case 0:
      return (block[index >>> 3]! >>> (index & 7)) & 1;
    case 1:
      return (block[index >>> 2]! >>> ((index & 3) * 2)) & 3;
    case 2:
      return (block[index >>> 1]! >>> ((index & 1) * 4)) & 15;
    case 3:
      return block[index]!;
    case 4:
      return view.getUint16(index * 2);
    case 5:
      return view.getUint32(index * 4);
    default: {
      const hi = view.getUint32(index * 8);
      const lo = view.getUint32(index * 8 + 4);
      return hi >= 1 << 21 ? Number.MAX_SAFE_INTEGER : hi * 4294967296 + lo;
    }
  }
}

/** Writes entry `index` of a refcount block; `value` must be within 0..maxRefcount(order). */
export function setRefcountEntry(block: Uint8Array, view: DataView, index: number, refcountOrder: number, value: number): void {
  switch (refcountOrder) {
    case 0: {
      const shift = index & 7;
      block[index >>> 3] = (block[index >>> 3]! & ~(1 << shift)) | ((value & 1) << shift);
      return;
    }
    case 1: {
      const shift = (index & 3) * 2;
      block[index >>> 2] = (block[index >>> 2]! & ~(3 << shift)) | ((value & 3) << shift);
      return;
    }
    case 2: {
      const shift = (index & 1) * 4;
      block[index >>> 1] = (block[index >>> 1]! & ~(15 << shift)) | ((value & 15) << shift);
      return;
    }
    case 3:
      block[index] = value;
      return;
    case 4:
      view.setUint16(index * 2, value);
      return;
    case 5:
      view.setUint32(index * 4, value);
      return;
    default:
      view.setUint32(index * 8, Math.floor(value / 4294967296));
      view.setUint32(index * 8 + 4, value >>> 0);
  }
}
