import { SAI_GET_LBA_STATUS, SAI_READ_CAPACITY_16, SCSI_OP } from './constants.js';

/**
 * A SCSI command descriptor block decoded into its fields (SPC-4 §4.2, SBC-3 §5). Numbers are
 * the CDB's own (blocks, bytes); 64-bit LBAs beyond 2^53 decode to an approximate (still out of
 * range) number. Reserved bits are ignored; the control byte is not kept.
 */
export type Cdb =
  | { readonly op: 'test-unit-ready' }
  | { readonly op: 'request-sense'; readonly desc: boolean; readonly allocationLength: number }
  | { readonly op: 'inquiry'; readonly evpd: boolean; readonly pageCode: number; readonly allocationLength: number }
  | { readonly op: 'read' | 'write'; readonly size: 6 | 10 | 12 | 16; readonly lba: number; readonly transferLength: number; readonly fua: boolean }
  | { readonly op: 'verify'; readonly size: 10 | 16; readonly lba: number; readonly verificationLength: number; readonly bytchk: number }
  | { readonly op: 'synchronize-cache'; readonly size: 10 | 16; readonly lba: number; readonly numberOfBlocks: number; readonly immed: boolean }
  | {
      readonly op: 'write-same';
      readonly size: 10 | 16;
      readonly lba: number;
      readonly numberOfBlocks: number;
      readonly unmap: boolean;
      readonly anchor: boolean;
      readonly ndob: boolean;
    }
  | { readonly op: 'unmap'; readonly anchor: boolean; readonly parameterListLength: number }
  | { readonly op: 'read-capacity'; readonly size: 10 | 16; readonly allocationLength: number }
  | { readonly op: 'get-lba-status'; readonly lba: number; readonly allocationLength: number }
  | {
      readonly op: 'mode-sense';
      readonly size: 6 | 10;
      readonly dbd: boolean;
      readonly llbaa: boolean;
      readonly pc: number;
      readonly pageCode: number;
      readonly subpageCode: number;
      readonly allocationLength: number;
    }
  | { readonly op: 'mode-select'; readonly size: 6 | 10; readonly pf: boolean; readonly sp: boolean; readonly parameterListLength: number }
  | { readonly op: 'start-stop-unit'; readonly immed: boolean; readonly powerCondition: number; readonly loej: boolean; readonly start: boolean }
  | { readonly op: 'report-luns'; readonly selectReport: number; readonly allocationLength: number };

/** Why a CDB could not be decoded; each maps to one ILLEGAL REQUEST sense code. */
export type CdbProblem =
  /** An operation code the target does not implement (INVALID COMMAND OPERATION CODE). */
  | 'INVALID_OPCODE'
  /** Fewer CDB bytes than the operation code's group needs (INVALID FIELD IN CDB). */
  | 'SHORT_CDB'
  /** An unsupported service action (INVALID FIELD IN CDB). */
  | 'INVALID_SERVICE_ACTION';

export type CdbDecodeResult = { readonly ok: true; readonly cdb: Cdb } | { readonly ok: false; readonly problem: CdbProblem; readonly opcode: number };

/** The CDB length an operation code's group implies (SPC-4 §4.2.5.1), or undefined for groups 3, 6, 7. */
export function cdbLength(opcode: number): number | undefined {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return undefined;
  }
}

const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const be24 = (b: Uint8Array, o: number) => (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) >>> 0) + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
const be64 = (b: Uint8Array, o: number) => be32(b, o) * 0x1_0000_0000 + be32(b, o + 4);

/** Decodes `bytes` (the CDB field; may be longer than the command). Never throws. */
export function decodeCdb(bytes: Uint8Array): CdbDecodeResult {
  const opcode = bytes[0];
  if (opcode === undefined) return { ok: false, problem: 'SHORT_CDB', opcode: -1 };
  const length = cdbLength(opcode);
  if (length === undefined) return { ok: false, problem: 'INVALID_OPCODE', opcode };
  const known = (Object.values(SCSI_OP) as number[]).includes(opcode);
  if (!known) return { ok: false, problem: 'INVALID_OPCODE', opcode };
  if (bytes.length < length) return { ok: false, problem: 'SHORT_CDB', opcode };
  const b = bytes;
  const ok = (cdb: Cdb): CdbDecodeResult => ({ ok: true, cdb });
  switch (opcode) {
    case SCSI_OP.TEST_UNIT_READY:
      return ok({ op: 'test-unit-ready' });
    case SCSI_OP.REQUEST_SENSE:
      return ok({ op: 'request-sense', desc: (b[1]! & 1) !== 0, allocationLength: b[4]! });
    case SCSI_OP.INQUIRY:
      return ok({ op: 'inquiry', evpd: (b[1]! & 1) !== 0, pageCode: b[2]!, allocationLength: be16(b, 3) });
    case SCSI_OP.READ_6:
    case SCSI_OP.WRITE_6:
      // SBC-3 §5.15: a TRANSFER LENGTH of 0 means 256 blocks.
      return ok({ op: opcode === SCSI_OP.READ_6 ? 'read' : 'write', size: 6, lba: be24(b, 1) & 0x1f_ffff, transferLength: b[4] === 0 ? 256 : b[4]!, fua: false });
    case SCSI_OP.READ_10:
    case SCSI_OP.WRITE_10:
      return ok({ op: opcode === SCSI_OP.READ_10 ? 'read' : 'write', size: 10, lba: be32(b, 2), transferLength: be16(b, 7), fua: (b[1]! & 0x08) !== 0 });
    case SCSI_OP.READ_12:
    case SCSI_OP.WRITE_12:
      return ok({ op: opcode === SCSI_OP.READ_12 ? 'read' : 'write', size: 12, lba: be32(b, 2), transferLength: be32(b, 6), fua: (b[1]! & 0x08) !== 0 });
    case SCSI_OP.READ_16:
    case SCSI_OP.WRITE_16:
      return ok({ op: opcode === SCSI_OP.READ_16 ? 'read' : 'write', size: 16, lba: be64(b, 2), transferLength: be32(b, 10), fua: (b[1]! & 0x08) !== 0 });
    case SCSI_OP.VERIFY_10:
      return ok({ op: 'verify', size: 10, lba: be32(b, 2), verificationLength: be16(b, 7), bytchk: (b[1]! >> 1) & 3 });
    case SCSI_OP.VERIFY_16:
      return ok({ op: 'verify', size: 16, lba: be64(b, 2), verificationLength: be32(b, 10), bytchk: (b[1]! >> 1) & 3 });
    case SCSI_OP.SYNCHRONIZE_CACHE_10:
      return ok({ op: 'synchronize-cache', size: 10, lba: be32(b, 2), numberOfBlocks: be16(b, 7), immed: (b[1]! & 2) !== 0 });
    case SCSI_OP.SYNCHRONIZE_CACHE_16:
      return ok({ op: 'synchronize-cache', size: 16, lba: be64(b, 2), numberOfBlocks: be32(b, 10), immed: (b[1]! & 2) !== 0 });
    case SCSI_OP.WRITE_SAME_10:
    case SCSI_OP.WRITE_SAME_16: {
      const size = opcode === SCSI_OP.WRITE_SAME_10 ? 10 : 16;
      return ok({
        op: 'write-same',
        size,
        lba: size === 10 ? be32(b, 2) : be64(b, 2),
        numberOfBlocks: size === 10 ? be16(b, 7) : be32(b, 10),
        unmap: (b[1]! & 0x08) !== 0,
        anchor: (b[1]! & 0x10) !== 0,
        ndob: size === 16 && (b[1]! & 0x01) !== 0,
      });
    }
    case SCSI_OP.UNMAP:
      return ok({ op: 'unmap', anchor: (b[1]! & 1) !== 0, parameterListLength: be16(b, 7) });
    case SCSI_OP.READ_CAPACITY_10:
      return ok({ op: 'read-capacity', size: 10, allocationLength: 8 });
    case SCSI_OP.SERVICE_ACTION_IN_16: {
      const action = b[1]! & 0x1f;
      if (action === SAI_READ_CAPACITY_16) return ok({ op: 'read-capacity', size: 16, allocationLength: be32(b, 10) });
      if (action === SAI_GET_LBA_STATUS) return ok({ op: 'get-lba-status', lba: be64(b, 2), allocationLength: be32(b, 10) });
      return { ok: false, problem: 'INVALID_SERVICE_ACTION', opcode };
    }
    case SCSI_OP.MODE_SENSE_6:
    case SCSI_OP.MODE_SENSE_10: {
      const size = opcode === SCSI_OP.MODE_SENSE_6 ? 6 : 10;
      return ok({
        op: 'mode-sense',
        size,
        dbd: (b[1]! & 0x08) !== 0,
        llbaa: size === 10 && (b[1]! & 0x10) !== 0,
        pc: b[2]! >> 6,
        pageCode: b[2]! & 0x3f,
        subpageCode: b[3]!,
        allocationLength: size === 6 ? b[4]! : be16(b, 7),
      });
    }
    case SCSI_OP.MODE_SELECT_6:
    case SCSI_OP.MODE_SELECT_10: {
      const size = opcode === SCSI_OP.MODE_SELECT_6 ? 6 : 10;
      return ok({ op: 'mode-select', size, pf: (b[1]! & 0x10) !== 0, sp: (b[1]! & 1) !== 0, parameterListLength: size === 6 ? b[4]! : be16(b, 7) });
    }
    case SCSI_OP.START_STOP_UNIT:
      return ok({ op: 'start-stop-unit', immed: (b[1]! & 1) !== 0, powerCondition: b[4]! >> 4, loej: (b[4]! & 2) !== 0, start: (b[4]! & 1) !== 0 });
    case SCSI_OP.REPORT_LUNS:
      return ok({ op: 'report-luns', selectReport: b[2]!, allocationLength: be32(b, 6) });
    default:
      return { ok: false, problem: 'INVALID_OPCODE', opcode };
  }
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
function put32(b: Uint8Array, o: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(o, v >>> 0);
}
function put64(b: Uint8Array, o: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setBigUint64(o, BigInt(v));
}

/**
 * Encodes a {@link Cdb} (the inverse of {@link decodeCdb} for in-range fields). Throws
 * RangeError for a field that does not fit its CDB (a caller bug, not guest input).
 */
export function encodeCdb(cdb: Cdb): Uint8Array {
  const fits = (value: number, bits: number, name: string) => {
    if (!Number.isSafeInteger(value) || value < 0 || value >= 2 ** bits) throw new RangeError(`${cdb.op}: ${name} ${value} does not fit ${bits} bits`);
  };
  switch (cdb.op) {
    case 'test-unit-ready':
      return new Uint8Array(6);
    case 'request-sense':
      fits(cdb.allocationLength, 8, 'allocationLength');
      return Uint8Array.of(SCSI_OP.REQUEST_SENSE, cdb.desc ? 1 : 0, 0, 0, cdb.allocationLength, 0);
    case 'inquiry': {
      fits(cdb.allocationLength, 16, 'allocationLength');
      const b = Uint8Array.of(SCSI_OP.INQUIRY, cdb.evpd ? 1 : 0, cdb.pageCode, 0, 0, 0);
      put16(b, 3, cdb.allocationLength);
      return b;
    }
    case 'read':
    case 'write': {
      const read = cdb.op === 'read';
      if (cdb.size === 6) {
        fits(cdb.lba, 21, 'lba');
        if (cdb.transferLength < 1 || cdb.transferLength > 256) throw new RangeError(`${cdb.op}(6): transferLength must be 1..256`);
        return Uint8Array.of(read ? SCSI_OP.READ_6 : SCSI_OP.WRITE_6, cdb.lba >> 16, (cdb.lba >> 8) & 0xff, cdb.lba & 0xff, cdb.transferLength & 0xff, 0);
      }
      const b = new Uint8Array(cdb.size);
      b[1] = cdb.fua ? 0x08 : 0;
      if (cdb.size === 10) {
        b[0] = read ? SCSI_OP.READ_10 : SCSI_OP.WRITE_10;
        fits(cdb.lba, 32, 'lba');
        fits(cdb.transferLength, 16, 'transferLength');
        put32(b, 2, cdb.lba);
        put16(b, 7, cdb.transferLength);
      } else if (cdb.size === 12) {
        b[0] = read ? SCSI_OP.READ_12 : SCSI_OP.WRITE_12;
        fits(cdb.lba, 32, 'lba');
        fits(cdb.transferLength, 32, 'transferLength');
        put32(b, 2, cdb.lba);
        put32(b, 6, cdb.transferLength);
      } else {
        b[0] = read ? SCSI_OP.READ_16 : SCSI_OP.WRITE_16;
        fits(cdb.lba, 53, 'lba');
        fits(cdb.transferLength, 32, 'transferLength');
        put64(b, 2, cdb.lba);
        put32(b, 10, cdb.transferLength);
      }
      return b;
    }
    case 'verify':
    case 'synchronize-cache':
    case 'write-same': {
      const count = cdb.op === 'verify' ? cdb.verificationLength : cdb.numberOfBlocks;
      const b = new Uint8Array(cdb.size);
      const ops = { verify: [SCSI_OP.VERIFY_10, SCSI_OP.VERIFY_16], 'synchronize-cache': [SCSI_OP.SYNCHRONIZE_CACHE_10, SCSI_OP.SYNCHRONIZE_CACHE_16], 'write-same': [SCSI_OP.WRITE_SAME_10, SCSI_OP.WRITE_SAME_16] } as const;
      b[0] = ops[cdb.op][cdb.size === 10 ? 0 : 1];
      if (cdb.op === 'verify') b[1] = (cdb.bytchk & 3) << 1;
      else if (cdb.op === 'synchronize-cache') b[1] = cdb.immed ? 2 : 0;
      else b[1] = (cdb.unmap ? 0x08 : 0) | (cdb.anchor ? 0x10 : 0) | (cdb.ndob && cdb.size === 16 ? 1 : 0);
      if (cdb.size === 10) {
        fits(cdb.lba, 32, 'lba');
        fits(count, 16, 'count');
        put32(b, 2, cdb.lba);
        put16(b, 7, count);
      } else {
        fits(cdb.lba, 53, 'lba');
        fits(count, 32, 'count');
        put64(b, 2, cdb.lba);
        put32(b, 10, count);
      }
      return b;
    }
    case 'unmap': {
      fits(cdb.parameterListLength, 16, 'parameterListLength');
      const b = new Uint8Array(10);
      b[0] = SCSI_OP.UNMAP;
      b[1] = cdb.anchor ? 1 : 0;
      put16(b, 7, cdb.parameterListLength);
      return b;
    }
    case 'read-capacity': {
      if (cdb.size === 10) return Uint8Array.of(SCSI_OP.READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
      fits(cdb.allocationLength, 32, 'allocationLength');
      const b = new Uint8Array(16);
      b[0] = SCSI_OP.SERVICE_ACTION_IN_16;
      b[1] = SAI_READ_CAPACITY_16;
      put32(b, 10, cdb.allocationLength);
      return b;
    }
    case 'get-lba-status': {
      fits(cdb.lba, 53, 'lba');
      fits(cdb.allocationLength, 32, 'allocationLength');
      const b = new Uint8Array(16);
      b[0] = SCSI_OP.SERVICE_ACTION_IN_16;
      b[1] = SAI_GET_LBA_STATUS;
      put64(b, 2, cdb.lba);
      put32(b, 10, cdb.allocationLength);
      return b;
    }
    case 'mode-sense': {
      fits(cdb.allocationLength, cdb.size === 6 ? 8 : 16, 'allocationLength');
      const b = new Uint8Array(cdb.size);
      b[0] = cdb.size === 6 ? SCSI_OP.MODE_SENSE_6 : SCSI_OP.MODE_SENSE_10;
      b[1] = (cdb.dbd ? 0x08 : 0) | (cdb.llbaa && cdb.size === 10 ? 0x10 : 0);
      b[2] = ((cdb.pc & 3) << 6) | (cdb.pageCode & 0x3f);
      b[3] = cdb.subpageCode & 0xff;
      if (cdb.size === 6) b[4] = cdb.allocationLength;
      else put16(b, 7, cdb.allocationLength);
      return b;
    }
    case 'mode-select': {
      fits(cdb.parameterListLength, cdb.size === 6 ? 8 : 16, 'parameterListLength');
      const b = new Uint8Array(cdb.size);
      b[0] = cdb.size === 6 ? SCSI_OP.MODE_SELECT_6 : SCSI_OP.MODE_SELECT_10;
      b[1] = (cdb.pf ? 0x10 : 0) | (cdb.sp ? 1 : 0);
      if (cdb.size === 6) b[4] = cdb.parameterListLength;
      else put16(b, 7, cdb.parameterListLength);
      return b;
    }
    case 'start-stop-unit':
      return Uint8Array.of(SCSI_OP.START_STOP_UNIT, cdb.immed ? 1 : 0, 0, 0, ((cdb.powerCondition & 0xf) << 4) | (cdb.loej ? 2 : 0) | (cdb.start ? 1 : 0), 0);
    case 'report-luns': {
      fits(cdb.allocationLength, 32, 'allocationLength');
      const b = new Uint8Array(12);
      b[0] = SCSI_OP.REPORT_LUNS;
      b[2] = cdb.selectReport & 0xff;
      put32(b, 6, cdb.allocationLength);
      return b;
    }
  }
}
