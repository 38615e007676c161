/** CDBs the driver model issues (SPC-4 / SBC-3), built big-endian as Linux's sd builds them. */

function cdb(length: number, opcode: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(length);
  bytes[0] = opcode;
  return { bytes, view: new DataView(bytes.buffer) };
}

export const testUnitReady = (): Uint8Array => new Uint8Array(6);

export function inquiry(allocationLength: number, vpdPage?: number): Uint8Array {
  const { bytes, view } = cdb(6, 0x12);
  if (vpdPage !== undefined) {
    bytes[1] = 1;
    bytes[2] = vpdPage;
  }
  view.setUint16(3, allocationLength);
  return bytes;
}

export function reportLuns(allocationLength: number): Uint8Array {
  const { view, bytes } = cdb(12, 0xa0);
  view.setUint32(6, allocationLength);
  return bytes;
}

export function readCapacity16(): Uint8Array {
  const { bytes, view } = cdb(16, 0x9e);
  bytes[1] = 0x10;
  view.setUint32(10, 32);
  return bytes;
}

export function readWrite16(write: boolean, lba: number, blocks: number, fua = false): Uint8Array {
  const { bytes, view } = cdb(16, write ? 0x8a : 0x88);
  if (fua) bytes[1] = 0x08;
  view.setBigUint64(2, BigInt(lba));
  view.setUint32(10, blocks);
  return bytes;
}

export function synchronizeCache16(): Uint8Array {
  return cdb(16, 0x91).bytes;
}

export function unmap(parameterListLength: number): Uint8Array {
  const { bytes, view } = cdb(10, 0x42);
  view.setUint16(7, parameterListLength);
  return bytes;
}

export function modeSense10(pageCode: number, allocationLength: number): Uint8Array {
  const { bytes, view } = cdb(10, 0x5a);
  bytes[1] = 0x08; // DBD
  bytes[2] = pageCode & 0x3f;
  view.setUint16(7, allocationLength);
  return bytes;
}

/** UNMAP parameter list (SBC-3 §5.28.2) for `(lba, blocks)` ranges. */
export function unmapParameterList(ranges: readonly { lba: number; blocks: number }[]): Uint8Array {
  const bytes = new Uint8Array(8 + ranges.length * 16);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, bytes.length - 2);
  view.setUint16(2, ranges.length * 16);
  ranges.forEach((r, i) => {
    view.setBigUint64(8 + i * 16, BigInt(r.lba));
    view.setUint32(16 + i * 16, r.blocks);
  });
  return bytes;
}
