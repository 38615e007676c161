import { SENSE_DATA_PROTECT, SENSE_ILLEGAL_REQUEST, SENSE_MEDIUM_ERROR, SENSE_NO_SENSE, SENSE_UNIT_ATTENTION } from './constants.js';

/** A sense key with its additional sense code and qualifier (SPC-4 §4.5.6). */
export interface SenseCode {
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
}

/** The sense codes the target reports, named after SPC-4's ASC/ASCQ table. */
export const SENSE = {
  NO_SENSE: { key: SENSE_NO_SENSE, asc: 0x00, ascq: 0x00 },
  INVALID_COMMAND_OPERATION_CODE: { key: SENSE_ILLEGAL_REQUEST, asc: 0x20, ascq: 0x00 },
  LBA_OUT_OF_RANGE: { key: SENSE_ILLEGAL_REQUEST, asc: 0x21, ascq: 0x00 },
  INVALID_FIELD_IN_CDB: { key: SENSE_ILLEGAL_REQUEST, asc: 0x24, ascq: 0x00 },
  LOGICAL_UNIT_NOT_SUPPORTED: { key: SENSE_ILLEGAL_REQUEST, asc: 0x25, ascq: 0x00 },
  INVALID_FIELD_IN_PARAMETER_LIST: { key: SENSE_ILLEGAL_REQUEST, asc: 0x26, ascq: 0x00 },
  PARAMETER_LIST_LENGTH_ERROR: { key: SENSE_ILLEGAL_REQUEST, asc: 0x1a, ascq: 0x00 },
  SAVING_PARAMETERS_NOT_SUPPORTED: { key: SENSE_ILLEGAL_REQUEST, asc: 0x39, ascq: 0x00 },
  UNRECOVERED_READ_ERROR: { key: SENSE_MEDIUM_ERROR, asc: 0x11, ascq: 0x00 },
  WRITE_ERROR: { key: SENSE_MEDIUM_ERROR, asc: 0x0c, ascq: 0x00 },
  MISCOMPARE_DURING_VERIFY: { key: 0xe, asc: 0x1d, ascq: 0x00 },
  POWER_ON_RESET: { key: SENSE_UNIT_ATTENTION, asc: 0x29, ascq: 0x00 },
  I_T_NEXUS_LOSS: { key: SENSE_UNIT_ATTENTION, asc: 0x29, ascq: 0x07 },
  MODE_PARAMETERS_CHANGED: { key: SENSE_UNIT_ATTENTION, asc: 0x2a, ascq: 0x01 },
  CAPACITY_DATA_HAS_CHANGED: { key: SENSE_UNIT_ATTENTION, asc: 0x2a, ascq: 0x09 },
  REPORTED_LUNS_DATA_HAS_CHANGED: { key: SENSE_UNIT_ATTENTION, asc: 0x3f, ascq: 0x0e },
  WRITE_PROTECTED: { key: SENSE_DATA_PROTECT, asc: 0x27, ascq: 0x00 },
} as const satisfies Record<string, SenseCode>;

/** Length of fixed-format sense data with no additional bytes beyond byte 17. */
export const FIXED_SENSE_LENGTH = 18;

/**
 * Fixed-format sense data (SPC-4 §4.5.3, response code 0x70 "current"). `information` (bytes
 * 3..6, VALID bit set) is optional.
 */
export function encodeFixedSense(code: SenseCode, information?: number): Uint8Array {
  const bytes = new Uint8Array(FIXED_SENSE_LENGTH);
  bytes[0] = 0x70;
  bytes[2] = code.key & 0x0f;
  if (information !== undefined && information >= 0 && information <= 0xffff_ffff) {
    bytes[0] |= 0x80;
    new DataView(bytes.buffer).setUint32(3, information);
  }
  bytes[7] = FIXED_SENSE_LENGTH - 8; // additional sense length
  bytes[12] = code.asc;
  bytes[13] = code.ascq;
  return bytes;
}

/** Reads key/ASC/ASCQ from fixed (0x70/0x71) or descriptor (0x72/0x73) sense data; undefined if neither. */
export function decodeSense(bytes: Uint8Array): SenseCode | undefined {
  const code = (bytes[0] ?? 0) & 0x7f;
  if ((code === 0x70 || code === 0x71) && bytes.length >= 14) return { key: bytes[2]! & 0x0f, asc: bytes[12]!, ascq: bytes[13]! };
  if ((code === 0x72 || code === 0x73) && bytes.length >= 4) return { key: bytes[1]! & 0x0f, asc: bytes[2]!, ascq: bytes[3]! };
  return undefined;
}
