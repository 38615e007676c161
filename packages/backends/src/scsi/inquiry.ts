/**
 * INQUIRY data (SPC-4 §6.6): standard data and the vital product data pages the target
 * supports (§7.8: 0x00, 0x80, 0x83; SBC-3 §6.6: 0xB0, 0xB1, 0xB2).
 */

/** What INQUIRY reports about a logical unit. */
export interface InquiryIdentity {
  /** T10 vendor identification, ASCII, at most 8 bytes (space padded). */
  readonly vendor: string;
  /** Product identification, at most 16 bytes. */
  readonly product: string;
  /** Product revision level, at most 4 bytes. */
  readonly revision: string;
  /** Unit serial number (VPD 0x80); empty: page 0x80 is not offered. */
  readonly serial: string;
  /** NAA IEEE Registered designator (VPD 0x83), a 64-bit WWN whose top nibble is 5; none if undefined. */
  readonly wwn: bigint | undefined;
}

/** The logical unit's block limits and provisioning, for VPD 0xB0 / 0xB2. */
export interface InquiryLimits {
  readonly maxTransferBlocks: number;
  readonly optimalTransferBlocks: number;
  /** 0 when UNMAP is not supported. */
  readonly maxUnmapBlocks: number;
  readonly maxUnmapDescriptors: number;
  readonly maxWriteSameBlocks: number;
  readonly unmap: boolean;
  readonly physicalBlockExponent: number;
}

/** Peripheral device type 0: direct access block device (SBC). */
export const PERIPHERAL_DIRECT_ACCESS = 0x00;
/** Peripheral qualifier 3, type 0x1f: no logical unit at this address (SPC-4 §6.6.2). */
export const PERIPHERAL_NO_LUN = 0x7f;

/** VPD pages offered, in ascending order (the serial page only with a serial). */
export function supportedVpdPages(identity: InquiryIdentity): number[] {
  return identity.serial === '' ? [0x00, 0x83, 0xb0, 0xb1, 0xb2] : [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];
}

function ascii(target: Uint8Array, offset: number, length: number, text: string): void {
  target.fill(0x20, offset, offset + length);
  for (let i = 0; i < Math.min(length, text.length); i++) target[offset + i] = text.charCodeAt(i) & 0x7f;
}

/** Standard INQUIRY data, 36 bytes (SPC-4 §6.6.2). */
export function standardInquiry(identity: InquiryIdentity, peripheral = PERIPHERAL_DIRECT_ACCESS): Uint8Array {
  const b = new Uint8Array(36);
  b[0] = peripheral;
  b[2] = 0x06; // VERSION: SPC-4
  b[3] = 0x12; // HISUP, RESPONSE DATA FORMAT 2
  b[4] = b.length - 5; // ADDITIONAL LENGTH
  b[7] = 0x02; // CMDQUE
  ascii(b, 8, 8, identity.vendor);
  ascii(b, 16, 16, identity.product);
  ascii(b, 32, 4, identity.revision);
  return b;
}

/** A VPD page, or undefined for a page that is not supported. */
export function vpdPage(page: number, identity: InquiryIdentity, limits: InquiryLimits): Uint8Array | undefined {
  if (!supportedVpdPages(identity).includes(page)) return undefined;
  const withHeader = (body: Uint8Array) => {
    const b = new Uint8Array(4 + body.length);
    b[0] = PERIPHERAL_DIRECT_ACCESS;
    b[1] = page;
    b[2] = body.length >> 8;
    b[3] = body.length & 0xff;
    b.set(body, 4);
    return b;
  };
  switch (page) {
    case 0x00:
      return withHeader(Uint8Array.from(supportedVpdPages(identity)));
    case 0x80: {
      const body = new Uint8Array(identity.serial.length);
      ascii(body, 0, body.length, identity.serial);
      return withHeader(body);
    }
    case 0x83: {
      // T10 vendor ID designator (type 1, ASCII): vendor (8 bytes) + serial or product.
      const id = identity.serial !== '' ? identity.serial : identity.product.trim();
      const t10 = new Uint8Array(4 + 8 + id.length);
      t10[0] = 0x02; // code set ASCII
      t10[1] = 0x01; // association LU, type T10 vendor ID
      t10[3] = 8 + id.length;
      ascii(t10, 4, 8, identity.vendor);
      ascii(t10, 12, id.length, id);
      const parts = [t10];
      if (identity.wwn !== undefined) {
        const naa = new Uint8Array(12);
        naa[0] = 0x01; // binary
        naa[1] = 0x03; // association LU, type NAA
        naa[3] = 8;
        new DataView(naa.buffer).setBigUint64(4, identity.wwn);
        parts.unshift(naa);
      }
      const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        body.set(p, at);
        at += p.length;
      }
      return withHeader(body);
    }
    case 0xb0: {
      const body = new Uint8Array(0x3c);
      const v = new DataView(body.buffer);
      body[0] = 0x01; // WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is not supported
      v.setUint16(2, 1 << limits.physicalBlockExponent); // OPTIMAL TRANSFER LENGTH GRANULARITY
      v.setUint32(4, limits.maxTransferBlocks);
      v.setUint32(8, limits.optimalTransferBlocks);
      if (limits.unmap) {
        v.setUint32(16, limits.maxUnmapBlocks);
        v.setUint32(20, limits.maxUnmapDescriptors);
        v.setUint32(24, 1 << limits.physicalBlockExponent); // OPTIMAL UNMAP GRANULARITY
      }
      v.setBigUint64(32, BigInt(limits.maxWriteSameBlocks));
      return withHeader(body);
    }
    case 0xb1: {
      const body = new Uint8Array(0x3c);
      body[1] = 0x01; // MEDIUM ROTATION RATE 1: non-rotating medium
      return withHeader(body);
    }
    case 0xb2: {
      const body = new Uint8Array(4);
      // LBPU | LBPWS | LBPWS10 when UNMAP is supported; PROVISIONING TYPE 2 (thin) or 0.
      body[1] = limits.unmap ? 0xe0 : 0x00;
      body[2] = limits.unmap ? 0x02 : 0x00;
      return withHeader(body);
    }
    default:
      return undefined;
  }
}
