import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cdbLength, decodeCdb, encodeCdb, type Cdb } from './cdb.js';
import { SCSI_OP } from './constants.js';

const hex = (s: string) => Uint8Array.from(s.split(' ').map((x) => parseInt(x, 16)));

describe('CDB codec (SPC-4 §4.2, SBC-3 §5)', () => {
  // Every opcode and every length variant, decoded from bytes as Linux sd builds them.
  const table: [string, string, Cdb][] = [
    ['TEST UNIT READY', '00 00 00 00 00 00', { op: 'test-unit-ready' }],
    ['REQUEST SENSE', '03 00 00 00 60 00', { op: 'request-sense', desc: false, allocationLength: 96 }],
    ['INQUIRY standard', '12 00 00 00 24 00', { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 36 }],
    ['INQUIRY VPD 0xb0, 0xffff', '12 01 b0 ff ff 00', { op: 'inquiry', evpd: true, pageCode: 0xb0, allocationLength: 0xffff }],
    ['READ(6), length 0 = 256', '08 1f ff ff 00 00', { op: 'read', size: 6, lba: 0x1fffff, transferLength: 256, fua: false }],
    ['WRITE(6)', '0a 00 00 10 08 00', { op: 'write', size: 6, lba: 16, transferLength: 8, fua: false }],
    ['READ(10) FUA', '28 08 00 00 00 20 00 00 08 00', { op: 'read', size: 10, lba: 32, transferLength: 8, fua: true }],
    ['WRITE(10)', '2a 00 ff ff ff ff 00 ff ff 00', { op: 'write', size: 10, lba: 0xffffffff, transferLength: 0xffff, fua: false }],
    ['READ(12)', 'a8 00 00 00 01 00 00 00 00 10 00 00', { op: 'read', size: 12, lba: 256, transferLength: 16, fua: false }],
    ['WRITE(12)', 'aa 08 00 00 00 01 00 01 00 00 00 00', { op: 'write', size: 12, lba: 1, transferLength: 0x10000, fua: true }],
    ['READ(16)', '88 00 00 00 00 01 00 00 00 00 00 00 00 08 00 00', { op: 'read', size: 16, lba: 2 ** 32, transferLength: 8, fua: false }],
    ['WRITE(16)', '8a 00 00 00 00 00 00 00 00 07 00 00 00 01 00 00', { op: 'write', size: 16, lba: 7, transferLength: 1, fua: false }],
    ['VERIFY(10) BYTCHK 1', '2f 02 00 00 00 04 00 00 02 00', { op: 'verify', size: 10, lba: 4, verificationLength: 2, bytchk: 1 }],
    ['VERIFY(16)', '8f 00 00 00 00 00 00 00 00 04 00 00 00 02 00 00', { op: 'verify', size: 16, lba: 4, verificationLength: 2, bytchk: 0 }],
    ['SYNCHRONIZE CACHE(10)', '35 02 00 00 00 00 00 00 00 00', { op: 'synchronize-cache', size: 10, lba: 0, numberOfBlocks: 0, immed: true }],
    ['SYNCHRONIZE CACHE(16)', '91 00 00 00 00 00 00 00 00 01 00 00 00 01 00 00', { op: 'synchronize-cache', size: 16, lba: 1, numberOfBlocks: 1, immed: false }],
    ['WRITE SAME(10) UNMAP', '41 08 00 00 00 08 00 00 10 00', { op: 'write-same', size: 10, lba: 8, numberOfBlocks: 16, unmap: true, anchor: false, ndob: false }],
    ['WRITE SAME(16) NDOB', '93 09 00 00 00 00 00 00 00 08 00 00 00 10 00 00', { op: 'write-same', size: 16, lba: 8, numberOfBlocks: 16, unmap: true, anchor: false, ndob: true }],
    ['UNMAP', '42 00 00 00 00 00 00 00 18 00', { op: 'unmap', anchor: false, parameterListLength: 24 }],
    ['READ CAPACITY(10)', '25 00 00 00 00 00 00 00 00 00', { op: 'read-capacity', size: 10, allocationLength: 8 }],
    ['READ CAPACITY(16)', '9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00', { op: 'read-capacity', size: 16, allocationLength: 32 }],
    ['GET LBA STATUS', '9e 12 00 00 00 00 00 00 00 05 00 00 00 18 00 00', { op: 'get-lba-status', lba: 5, allocationLength: 24 }],
    ['MODE SENSE(6) 0x3f', '1a 00 3f 00 c0 00', { op: 'mode-sense', size: 6, dbd: false, llbaa: false, pc: 0, pageCode: 0x3f, subpageCode: 0, allocationLength: 192 }],
    ['MODE SENSE(10) caching, DBD', '5a 08 08 00 00 00 00 ff ff 00', { op: 'mode-sense', size: 10, dbd: true, llbaa: false, pc: 0, pageCode: 8, subpageCode: 0, allocationLength: 0xffff }],
    ['MODE SELECT(6)', '15 10 00 00 18 00', { op: 'mode-select', size: 6, pf: true, sp: false, parameterListLength: 24 }],
    ['MODE SELECT(10)', '55 11 00 00 00 00 00 00 1c 00', { op: 'mode-select', size: 10, pf: true, sp: true, parameterListLength: 28 }],
    ['START STOP UNIT', '1b 01 00 00 01 00', { op: 'start-stop-unit', immed: true, powerCondition: 0, loej: false, start: true }],
    ['REPORT LUNS', 'a0 00 02 00 00 00 00 00 10 00 00 00', { op: 'report-luns', selectReport: 2, allocationLength: 4096 }],
  ];
  it.each(table)('decodes %s', (_name, bytes, cdb) => {
    expect(decodeCdb(hex(bytes))).toEqual({ ok: true, cdb });
  });

  it.each(table)('decodes %s padded to cdb_size 32', (_name, bytes, cdb) => {
    const padded = new Uint8Array(32);
    padded.set(hex(bytes));
    expect(decodeCdb(padded)).toEqual({ ok: true, cdb });
  });

  it.each(table)('H12: %s one byte shorter than its opcode needs is SHORT_CDB', (_name, bytes) => {
    const b = hex(bytes);
    expect(decodeCdb(b.subarray(0, b.length - 1))).toEqual({ ok: false, problem: 'SHORT_CDB', opcode: b[0] });
  });

  it('an empty CDB, unknown opcodes, vendor groups and unknown service actions are refused', () => {
    expect(decodeCdb(new Uint8Array(0))).toMatchObject({ ok: false, problem: 'SHORT_CDB' });
    for (const op of [0x01, 0x04, 0x1e, 0x4d, 0x85, 0xa1, 0xa3, 0x7f, 0xc0, 0xff]) {
      expect(decodeCdb(Uint8Array.of(op, ...new Array<number>(31).fill(0)))).toEqual({ ok: false, problem: 'INVALID_OPCODE', opcode: op });
    }
    expect(decodeCdb(hex('9e 11 00 00 00 00 00 00 00 00 00 00 00 00 00 00'))).toMatchObject({ ok: false, problem: 'INVALID_SERVICE_ACTION' });
  });

  it('the group code gives the CDB length', () => {
    expect([0x00, 0x28, 0x5a, 0x88, 0xa0, 0x7f, 0xc0].map(cdbLength)).toEqual([6, 10, 10, 16, 12, undefined, undefined]);
    for (const op of Object.values(SCSI_OP)) expect(cdbLength(op)).toBeDefined();
  });

  it('every table entry encodes back to a CDB that decodes to the same fields', () => {
    for (const [, , cdb] of table) expect(decodeCdb(encodeCdb(cdb))).toEqual({ ok: true, cdb });
  });

  const u = (bits: number) => fc.integer({ min: 0, max: 2 ** bits - 1 });
  const arbitraryCdb: fc.Arbitrary<Cdb> = fc.oneof(
    fc.constant<Cdb>({ op: 'test-unit-ready' }),
    fc.record({ op: fc.constant('request-sense' as const), desc: fc.boolean(), allocationLength: u(8) }),
    fc.record({ op: fc.constant('inquiry' as const), evpd: fc.boolean(), pageCode: u(8), allocationLength: u(16) }),
    fc.record({ op: fc.constantFrom('read' as const, 'write' as const), size: fc.constant(6 as const), lba: u(21), transferLength: fc.integer({ min: 1, max: 256 }), fua: fc.constant(false) }),
    fc.record({ op: fc.constantFrom('read' as const, 'write' as const), size: fc.constant(10 as const), lba: u(32), transferLength: u(16), fua: fc.boolean() }),
    fc.record({ op: fc.constantFrom('read' as const, 'write' as const), size: fc.constantFrom(12 as const, 16 as const), lba: u(32), transferLength: u(32), fua: fc.boolean() }),
    fc.record({ op: fc.constant('verify' as const), size: fc.constant(16 as const), lba: fc.maxSafeNat(), verificationLength: u(32), bytchk: u(2) }),
    fc.record({ op: fc.constant('synchronize-cache' as const), size: fc.constant(10 as const), lba: u(32), numberOfBlocks: u(16), immed: fc.boolean() }),
    fc.record({ op: fc.constant('write-same' as const), size: fc.constant(16 as const), lba: fc.maxSafeNat(), numberOfBlocks: u(32), unmap: fc.boolean(), anchor: fc.boolean(), ndob: fc.boolean() }),
    fc.record({ op: fc.constant('unmap' as const), anchor: fc.boolean(), parameterListLength: u(16) }),
    fc.record({ op: fc.constant('get-lba-status' as const), lba: fc.maxSafeNat(), allocationLength: u(32) }),
    fc.record({ op: fc.constant('mode-sense' as const), size: fc.constant(10 as const), dbd: fc.boolean(), llbaa: fc.boolean(), pc: u(2), pageCode: u(6), subpageCode: u(8), allocationLength: u(16) }),
    fc.record({ op: fc.constant('mode-select' as const), size: fc.constant(6 as const), pf: fc.boolean(), sp: fc.boolean(), parameterListLength: u(8) }),
    fc.record({ op: fc.constant('start-stop-unit' as const), immed: fc.boolean(), powerCondition: u(4), loej: fc.boolean(), start: fc.boolean() }),
    fc.record({ op: fc.constant('report-luns' as const), selectReport: u(8), allocationLength: u(32) }),
  );

  it('property: decode(encode(cdb)) = cdb', () => {
    fc.assert(
      fc.property(arbitraryCdb, (cdb) => {
        expect(decodeCdb(encodeCdb(cdb))).toEqual({ ok: true, cdb });
      }),
      { numRuns: 500 },
    );
  });

  it('property: decoding arbitrary bytes never throws', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => void decodeCdb(bytes)), { numRuns: 1000 });
  });
});
