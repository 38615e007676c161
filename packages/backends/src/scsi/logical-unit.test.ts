import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../testing/memory-disk.js';
import { encodeCdb, type Cdb } from './cdb.js';
import { SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD } from './constants.js';
import { ScsiLogicalUnit, type ScsiLogicalUnitOptions } from './logical-unit.js';
import { SENSE, decodeSense, type SenseCode } from './sense.js';

const DISK = 1 << 20; // 2048 blocks of 512
const hex = (s: string) => Uint8Array.from(s.split(' ').map((x) => parseInt(x, 16)));

function lun(options: Partial<ScsiLogicalUnitOptions> & { disk?: MemoryDisk } = {}) {
  const disk = options.disk ?? new MemoryDisk({ size: DISK });
  const unit = new ScsiLogicalUnit({ serial: 'SN0001', ...options, driver: disk });
  // Consume the power-on unit attention as Linux's first TEST UNIT READY does.
  (unit.pendingUnitAttentions as SenseCode[]).length = 0;
  return { disk, unit };
}

const target = { luns: () => [0, 1, 300] };

async function run(unit: ScsiLogicalUnit, cdb: Cdb | Uint8Array, io: { dataIn?: number; dataOut?: Uint8Array } = {}) {
  const dataIn = new Uint8Array(io.dataIn ?? 0).fill(0xcc);
  const views = { dataIn: dataIn.length > 0 ? [dataIn] : [], dataOut: io.dataOut !== undefined ? [io.dataOut] : [] };
  const result = await unit.execute(cdb instanceof Uint8Array ? cdb : encodeCdb(cdb), views, target);
  return { ...result, data: dataIn.subarray(0, result.dataInLength), sense: result.sense !== undefined ? decodeSense(result.sense) : undefined };
}

async function expectSense(unit: ScsiLogicalUnit, cdb: Cdb | Uint8Array, code: SenseCode, io: { dataIn?: number; dataOut?: Uint8Array } = {}) {
  const r = await run(unit, cdb, io);
  expect(r.status).toBe(SAM_STAT_CHECK_CONDITION);
  expect(r.sense).toEqual(code);
  return r;
}

describe('SCSI logical unit: command set (SPC-4, SBC-3)', () => {
  it('SPC-4 §5.14: the first command after power on gets UNIT ATTENTION POWER ON, RESET; INQUIRY does not clear it', async () => {
    const unit = new ScsiLogicalUnit({ driver: new MemoryDisk({ size: DISK }) });
    expect((await run(unit, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 36 }, { dataIn: 36 })).status).toBe(SAM_STAT_GOOD);
    await expectSense(unit, { op: 'test-unit-ready' }, SENSE.POWER_ON_RESET);
    expect((await run(unit, { op: 'test-unit-ready' })).status).toBe(SAM_STAT_GOOD);
  });

  it('REQUEST SENSE returns and clears a pending unit attention, then NO SENSE', async () => {
    const unit = new ScsiLogicalUnit({ driver: new MemoryDisk({ size: DISK }) });
    const r = await run(unit, { op: 'request-sense', desc: false, allocationLength: 252 }, { dataIn: 252 });
    expect(r.status).toBe(SAM_STAT_GOOD);
    expect(r.dataInLength).toBe(18);
    expect(decodeSense(r.data)).toEqual(SENSE.POWER_ON_RESET);
    expect(decodeSense((await run(unit, { op: 'request-sense', desc: false, allocationLength: 18 }, { dataIn: 18 })).data)).toEqual(SENSE.NO_SENSE);
  });

  it('INQUIRY standard data: direct access, SPC-4, vendor/product/revision space padded', async () => {
    const { unit } = lun({ vendor: 'ACME', product: 'Disk', revision: '2' });
    const r = await run(unit, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 96 }, { dataIn: 96 });
    expect(r.dataInLength).toBe(36);
    expect(r.data[0]).toBe(0);
    expect(r.data[2]).toBe(6);
    expect(r.data[4]).toBe(31);
    expect(new TextDecoder().decode(r.data.subarray(8, 36))).toBe('ACME    Disk            2   ');
  });

  it('H9: allocation length shorter than the data returns what fits; a data-in buffer shorter than the allocation length too', async () => {
    const { unit } = lun();
    expect((await run(unit, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 5 }, { dataIn: 96 })).dataInLength).toBe(5);
    expect((await run(unit, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 0xffff }, { dataIn: 10 })).dataInLength).toBe(10);
    expect((await run(unit, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 0 }, { dataIn: 96 })).dataInLength).toBe(0);
  });

  it('INQUIRY VPD pages 0x00, 0x80, 0x83 (T10 vendor id and NAA), 0xB0, 0xB1, 0xB2', async () => {
    const { unit } = lun({ wwn: 0x5000_c500_1234_5678n });
    const page = async (p: number) => (await run(unit, { op: 'inquiry', evpd: true, pageCode: p, allocationLength: 0xffff }, { dataIn: 512 })).data;
    expect([...(await page(0x00))]).toEqual([0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    expect(new TextDecoder().decode((await page(0x80)).subarray(4))).toBe('SN0001');
    const id = await page(0x83);
    expect([...id.subarray(4, 8)]).toEqual([1, 3, 0, 8]); // NAA, binary
    expect(new DataView(id.buffer, id.byteOffset).getBigUint64(8)).toBe(0x5000_c500_1234_5678n);
    expect([...id.subarray(16, 20)]).toEqual([2, 1, 0, 14]); // T10 vendor id, ASCII
    expect(new TextDecoder().decode(id.subarray(20, 34))).toBe('VIRTIOTSSN0001');
    const limits = await page(0xb0);
    expect(limits.length).toBe(64);
    expect(limits[4]! & 1).toBe(1); // WSNZ
    expect(new DataView(limits.buffer, limits.byteOffset).getUint32(24)).toBe(64); // max unmap descriptors
    expect((await page(0xb1))[5]).toBe(1); // non-rotating
    const lbp = await page(0xb2);
    expect(lbp[5]).toBe(0xe0); // LBPU LBPWS LBPWS10
    expect(lbp[6]).toBe(2); // thin
  });

  it('H12: an unknown VPD page and a page code without EVPD are INVALID FIELD IN CDB; no serial, no page 0x80', async () => {
    const { unit } = lun({ serial: '' });
    await expectSense(unit, { op: 'inquiry', evpd: true, pageCode: 0x89, allocationLength: 255 }, SENSE.INVALID_FIELD_IN_CDB, { dataIn: 255 });
    await expectSense(unit, { op: 'inquiry', evpd: true, pageCode: 0x80, allocationLength: 255 }, SENSE.INVALID_FIELD_IN_CDB, { dataIn: 255 });
    await expectSense(unit, { op: 'inquiry', evpd: false, pageCode: 0x83, allocationLength: 255 }, SENSE.INVALID_FIELD_IN_CDB, { dataIn: 255 });
  });

  it('READ CAPACITY(10) and (16): last LBA and block length; LBPME with UNMAP', async () => {
    const { unit } = lun();
    const r10 = await run(unit, { op: 'read-capacity', size: 10, allocationLength: 8 }, { dataIn: 8 });
    expect([...r10.data]).toEqual([0, 0, 0x07, 0xff, 0, 0, 2, 0]);
    const r16 = await run(unit, { op: 'read-capacity', size: 16, allocationLength: 32 }, { dataIn: 32 });
    const v = new DataView(r16.data.buffer, r16.data.byteOffset);
    expect(v.getBigUint64(0)).toBe(2047n);
    expect(v.getUint32(8)).toBe(512);
    expect(r16.data[14]).toBe(0x80);
    const ro = lun({ readOnly: true }).unit;
    expect((await run(ro, { op: 'read-capacity', size: 16, allocationLength: 32 }, { dataIn: 32 })).data[14]).toBe(0);
  });

  it.each([6, 10, 12, 16] as const)('READ(%i) and WRITE round trip against the disk', async (size) => {
    const { unit, disk } = lun();
    const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7 + size) & 0xff);
    expect((await run(unit, { op: 'write', size, lba: 10, transferLength: 2, fua: false }, { dataOut: data })).status).toBe(SAM_STAT_GOOD);
    expect(disk.bytes.subarray(5120, 6144)).toEqual(data);
    const r = await run(unit, { op: 'read', size, lba: 10, transferLength: 2, fua: false }, { dataIn: 1024 });
    expect(r.dataInLength).toBe(1024);
    expect(r.data).toEqual(data);
  });

  it('READ/WRITE past the last LBA: LBA OUT OF RANGE; a transfer longer than the buffer: overrun', async () => {
    const { unit } = lun();
    await expectSense(unit, { op: 'read', size: 10, lba: 2047, transferLength: 2, fua: false }, SENSE.LBA_OUT_OF_RANGE, { dataIn: 1024 });
    await expectSense(unit, { op: 'read', size: 16, lba: 2 ** 40, transferLength: 1, fua: false }, SENSE.LBA_OUT_OF_RANGE, { dataIn: 512 });
    await expectSense(unit, { op: 'write', size: 12, lba: 0, transferLength: 0xffff_ffff, fua: false }, SENSE.LBA_OUT_OF_RANGE);
    expect((await run(unit, { op: 'read', size: 10, lba: 0, transferLength: 4, fua: false }, { dataIn: 1024 })).overrun).toBe(true);
    expect((await run(unit, { op: 'write', size: 10, lba: 0, transferLength: 4, fua: false }, { dataOut: new Uint8Array(512) })).overrun).toBe(true);
    expect((await run(unit, { op: 'read', size: 10, lba: 0, transferLength: 0, fua: false })).status).toBe(SAM_STAT_GOOD);
  });

  it('MEDIUM ERROR when the BlockDriver fails: UNRECOVERED READ ERROR / WRITE ERROR', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { unit } = lun({ disk });
    const read = run(unit, { op: 'read', size: 10, lba: 0, transferLength: 1, fua: false }, { dataIn: 512 });
    await new Promise((r) => setTimeout(r, 0));
    disk.held.shift()!.fail();
    expect((await read).sense).toEqual(SENSE.UNRECOVERED_READ_ERROR);
    const write = run(unit, { op: 'write', size: 10, lba: 0, transferLength: 1, fua: false }, { dataOut: new Uint8Array(512) });
    await new Promise((r) => setTimeout(r, 0));
    disk.held.shift()!.fail();
    expect((await write).sense).toEqual(SENSE.WRITE_ERROR);
  });

  it('DATA PROTECT / WRITE PROTECTED for writes, WRITE SAME and UNMAP on a read-only LUN; MODE SENSE shows WP', async () => {
    const { unit } = lun({ readOnly: true });
    await expectSense(unit, { op: 'write', size: 10, lba: 0, transferLength: 1, fua: false }, SENSE.WRITE_PROTECTED, { dataOut: new Uint8Array(512) });
    await expectSense(unit, { op: 'write-same', size: 16, lba: 0, numberOfBlocks: 1, unmap: false, anchor: false, ndob: true }, SENSE.WRITE_PROTECTED);
    await expectSense(unit, { op: 'unmap', anchor: false, parameterListLength: 24 }, SENSE.WRITE_PROTECTED, { dataOut: new Uint8Array(24) });
    const ms = await run(unit, { op: 'mode-sense', size: 6, dbd: true, llbaa: false, pc: 0, pageCode: 0x08, subpageCode: 0, allocationLength: 255 }, { dataIn: 255 });
    expect(ms.data[2]! & 0x80).toBe(0x80);
  });

  it('unknown opcode: INVALID COMMAND OPERATION CODE; short CDB: INVALID FIELD IN CDB', async () => {
    const { unit } = lun();
    await expectSense(unit, hex('a3 0c 00 00 00 00 00 00 02 00 00 00'), SENSE.INVALID_COMMAND_OPERATION_CODE);
    await expectSense(unit, hex('88 00 00 00 00 00'), SENSE.INVALID_FIELD_IN_CDB);
  });

  it('VERIFY(10/16): BYTCHK 0 reads the medium, BYTCHK 1 compares (MISCOMPARE), BYTCHK 2 is invalid', async () => {
    const { unit, disk } = lun();
    disk.bytes.fill(0x11, 0, 1024);
    expect((await run(unit, { op: 'verify', size: 10, lba: 0, verificationLength: 2, bytchk: 0 })).status).toBe(SAM_STAT_GOOD);
    expect((await run(unit, { op: 'verify', size: 16, lba: 0, verificationLength: 2, bytchk: 1 }, { dataOut: new Uint8Array(1024).fill(0x11) })).status).toBe(SAM_STAT_GOOD);
    expect((await run(unit, { op: 'verify', size: 16, lba: 0, verificationLength: 2, bytchk: 3 }, { dataOut: new Uint8Array(512).fill(0x11) })).status).toBe(SAM_STAT_GOOD);
    const bad = new Uint8Array(1024).fill(0x11);
    bad[700] = 0;
    await expectSense(unit, { op: 'verify', size: 10, lba: 0, verificationLength: 2, bytchk: 1 }, SENSE.MISCOMPARE_DURING_VERIFY, { dataOut: bad });
    await expectSense(unit, { op: 'verify', size: 10, lba: 0, verificationLength: 2, bytchk: 2 }, SENSE.INVALID_FIELD_IN_CDB);
    await expectSense(unit, { op: 'verify', size: 10, lba: 2047, verificationLength: 2, bytchk: 0 }, SENSE.LBA_OUT_OF_RANGE);
  });

  it('SYNCHRONIZE CACHE(10/16) flushes; out-of-range is LBA OUT OF RANGE', async () => {
    const { unit, disk } = lun();
    await run(unit, { op: 'synchronize-cache', size: 10, lba: 0, numberOfBlocks: 0, immed: false });
    await run(unit, { op: 'synchronize-cache', size: 16, lba: 5, numberOfBlocks: 5, immed: false });
    expect(disk.calls.flush).toBe(2);
    await expectSense(unit, { op: 'synchronize-cache', size: 16, lba: 2048, numberOfBlocks: 1, immed: false }, SENSE.LBA_OUT_OF_RANGE);
  });

  it('WRITE SAME(10/16): pattern written, zero+UNMAP goes to writeZeroes, NUMBER OF BLOCKS 0 and ANCHOR invalid', async () => {
    const { unit, disk } = lun();
    const block = new Uint8Array(512).fill(0x42);
    expect((await run(unit, { op: 'write-same', size: 10, lba: 4, numberOfBlocks: 600, unmap: false, anchor: false, ndob: false }, { dataOut: block })).status).toBe(SAM_STAT_GOOD);
    expect(disk.bytes.subarray(4 * 512, 604 * 512).every((b) => b === 0x42)).toBe(true);
    expect(disk.bytes[604 * 512]).toBe(0);
    await run(unit, { op: 'write-same', size: 16, lba: 4, numberOfBlocks: 10, unmap: true, anchor: false, ndob: false }, { dataOut: new Uint8Array(512) });
    expect(disk.calls.writeZeroes).toBe(1);
    expect(disk.bytes.subarray(4 * 512, 14 * 512).every((b) => b === 0)).toBe(true);
    await expectSense(unit, { op: 'write-same', size: 10, lba: 0, numberOfBlocks: 0, unmap: false, anchor: false, ndob: false }, SENSE.INVALID_FIELD_IN_CDB, { dataOut: block });
    await expectSense(unit, { op: 'write-same', size: 10, lba: 0, numberOfBlocks: 1, unmap: true, anchor: true, ndob: false }, SENSE.INVALID_FIELD_IN_CDB, { dataOut: block });
    await expectSense(unit, { op: 'write-same', size: 16, lba: 2040, numberOfBlocks: 9, unmap: false, anchor: false, ndob: true }, SENSE.LBA_OUT_OF_RANGE);
  });

  function unmapList(ranges: [number, number][]): Uint8Array {
    const b = new Uint8Array(8 + ranges.length * 16);
    const v = new DataView(b.buffer);
    v.setUint16(0, b.length - 2);
    v.setUint16(2, ranges.length * 16);
    ranges.forEach(([lba, n], i) => {
      v.setBigUint64(8 + i * 16, BigInt(lba));
      v.setUint32(16 + i * 16, n);
    });
    return b;
  }

  it('UNMAP: discards each descriptor; bad parameter lists get exact sense', async () => {
    const { unit, disk } = lun();
    disk.bytes.fill(9);
    const list = unmapList([[0, 8], [100, 4]]);
    expect((await run(unit, { op: 'unmap', anchor: false, parameterListLength: list.length }, { dataOut: list })).status).toBe(SAM_STAT_GOOD);
    expect(disk.calls.discard).toBe(2);
    expect(disk.bytes[100 * 512]).toBe(0);
    await expectSense(unit, { op: 'unmap', anchor: false, parameterListLength: 4 }, SENSE.PARAMETER_LIST_LENGTH_ERROR, { dataOut: new Uint8Array(4) });
    const past = unmapList([[2040, 9]]);
    await expectSense(unit, { op: 'unmap', anchor: false, parameterListLength: past.length }, SENSE.LBA_OUT_OF_RANGE, { dataOut: past });
    const many = unmapList(Array.from({ length: 65 }, (_, i) => [i, 1]));
    await expectSense(unit, { op: 'unmap', anchor: false, parameterListLength: many.length }, SENSE.INVALID_FIELD_IN_PARAMETER_LIST, { dataOut: many });
    await expectSense(unit, { op: 'unmap', anchor: true, parameterListLength: 24 }, SENSE.INVALID_FIELD_IN_CDB, { dataOut: list });
    const noDiscard = lun({ disk: new MemoryDisk({ size: DISK, discard: false }) }).unit;
    await expectSense(noDiscard, { op: 'unmap', anchor: false, parameterListLength: list.length }, SENSE.INVALID_COMMAND_OPERATION_CODE, { dataOut: list });
  });

  it('REPORT LUNS lists the target (peripheral below 256, flat above); allocation length < 16 is invalid', async () => {
    const { unit } = lun();
    const r = await run(unit, { op: 'report-luns', selectReport: 0, allocationLength: 4096 }, { dataIn: 4096 });
    expect([...r.data]).toEqual([0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
    await expectSense(unit, { op: 'report-luns', selectReport: 0, allocationLength: 8 }, SENSE.INVALID_FIELD_IN_CDB, { dataIn: 8 });
    await expectSense(unit, { op: 'report-luns', selectReport: 0x10, allocationLength: 64 }, SENSE.INVALID_FIELD_IN_CDB, { dataIn: 64 });
  });

  it('MODE SENSE(6/10): caching and control pages, 0x3F all pages, block descriptors, page control', async () => {
    const { unit } = lun();
    const all6 = await run(unit, { op: 'mode-sense', size: 6, dbd: false, llbaa: false, pc: 0, pageCode: 0x3f, subpageCode: 0, allocationLength: 255 }, { dataIn: 255 });
    expect(all6.dataInLength).toBe(4 + 8 + 20 + 12);
    expect(all6.data[0]).toBe(all6.dataInLength - 1);
    expect(all6.data[3]).toBe(8);
    expect([...all6.data.subarray(12, 15)]).toEqual([0x08, 0x12, 0x04]); // WCE
    expect([...all6.data.subarray(32, 34)]).toEqual([0x0a, 0x0a]);
    const long = await run(unit, { op: 'mode-sense', size: 10, dbd: false, llbaa: true, pc: 0, pageCode: 0x0a, subpageCode: 0, allocationLength: 0xffff }, { dataIn: 512 });
    expect(long.dataInLength).toBe(8 + 16 + 12);
    expect(long.data[4]).toBe(1);
    const changeable = await run(unit, { op: 'mode-sense', size: 10, dbd: true, llbaa: false, pc: 1, pageCode: 0x08, subpageCode: 0, allocationLength: 64 }, { dataIn: 64 });
    expect(changeable.data[10]).toBe(0x04);
    expect((await run(unit, { op: 'mode-sense', size: 6, dbd: false, llbaa: false, pc: 0, pageCode: 0x3f, subpageCode: 0xff, allocationLength: 4 }, { dataIn: 255 })).dataInLength).toBe(4);
  });

  it('H12: MODE SENSE unknown page, unknown subpage: INVALID FIELD IN CDB; saved values: SAVING PARAMETERS NOT SUPPORTED', async () => {
    const { unit } = lun();
    const ms = (pc: number, pageCode: number, subpageCode: number): Cdb => ({ op: 'mode-sense', size: 10, dbd: false, llbaa: false, pc, pageCode, subpageCode, allocationLength: 0xffff });
    await expectSense(unit, ms(0, 0x1c, 0), SENSE.INVALID_FIELD_IN_CDB, { dataIn: 512 });
    await expectSense(unit, ms(0, 0x08, 1), SENSE.INVALID_FIELD_IN_CDB, { dataIn: 512 });
    await expectSense(unit, ms(3, 0x08, 0), SENSE.SAVING_PARAMETERS_NOT_SUPPORTED, { dataIn: 512 });
  });

  it('MODE SELECT(6/10) switches the write cache; WCE off makes writes write-through', async () => {
    const { unit, disk } = lun();
    const sense = await run(unit, { op: 'mode-sense', size: 10, dbd: true, llbaa: false, pc: 0, pageCode: 0x08, subpageCode: 0, allocationLength: 64 }, { dataIn: 64 });
    const params = sense.data.slice();
    params[0] = params[1] = 0;
    params[3] = 0;
    params[8 + 2]! &= ~0x04;
    expect((await run(unit, { op: 'mode-select', size: 10, pf: true, sp: false, parameterListLength: params.length }, { dataOut: params })).status).toBe(SAM_STAT_GOOD);
    expect(unit.writeCache).toBe(false);
    const flushes = disk.calls.flush;
    await run(unit, { op: 'write', size: 10, lba: 0, transferLength: 1, fua: false }, { dataOut: new Uint8Array(512) });
    expect(disk.calls.flush).toBe(flushes + 1);
    const six = Uint8Array.of(0, 0, 0, 0, 0x08, 0x12, 0x04, ...new Array<number>(17).fill(0));
    expect((await run(unit, { op: 'mode-select', size: 6, pf: true, sp: false, parameterListLength: six.length }, { dataOut: six })).status).toBe(SAM_STAT_GOOD);
    expect(unit.writeCache).toBe(true);
  });

  it('MODE SELECT errors: SP, unknown page, unchangeable bit, short list', async () => {
    const { unit } = lun();
    const caching = (byte2: number) => Uint8Array.of(0, 0, 0, 0, 0x08, 0x12, byte2, ...new Array<number>(17).fill(0));
    await expectSense(unit, { op: 'mode-select', size: 6, pf: true, sp: true, parameterListLength: 24 }, SENSE.INVALID_FIELD_IN_CDB, { dataOut: caching(4) });
    await expectSense(unit, { op: 'mode-select', size: 6, pf: true, sp: false, parameterListLength: 24 }, SENSE.INVALID_FIELD_IN_PARAMETER_LIST, { dataOut: caching(5) });
    const unknown = Uint8Array.of(0, 0, 0, 0, 0x1c, 0x0a, ...new Array<number>(10).fill(0));
    await expectSense(unit, { op: 'mode-select', size: 6, pf: true, sp: false, parameterListLength: unknown.length }, SENSE.INVALID_FIELD_IN_PARAMETER_LIST, { dataOut: unknown });
    await expectSense(unit, { op: 'mode-select', size: 10, pf: true, sp: false, parameterListLength: 4 }, SENSE.PARAMETER_LIST_LENGTH_ERROR, { dataOut: new Uint8Array(4) });
    await expectSense(unit, { op: 'mode-select', size: 6, pf: true, sp: false, parameterListLength: 10 }, SENSE.PARAMETER_LIST_LENGTH_ERROR, { dataOut: caching(4).subarray(0, 10) });
  });

  it('START STOP UNIT: stop flushes and media access is NOT READY until start; LOEJ invalid', async () => {
    const { unit, disk } = lun();
    await run(unit, { op: 'start-stop-unit', immed: false, powerCondition: 0, loej: false, start: false });
    expect(disk.calls.flush).toBe(1);
    await expectSense(unit, { op: 'test-unit-ready' }, { key: 2, asc: 4, ascq: 2 });
    await run(unit, { op: 'start-stop-unit', immed: false, powerCondition: 0, loej: false, start: true });
    expect((await run(unit, { op: 'test-unit-ready' })).status).toBe(SAM_STAT_GOOD);
    await expectSense(unit, { op: 'start-stop-unit', immed: false, powerCondition: 0, loej: true, start: false }, SENSE.INVALID_FIELD_IN_CDB);
  });

  it('GET LBA STATUS: one mapped descriptor from the LBA; past the end: LBA OUT OF RANGE', async () => {
    const { unit } = lun();
    const r = await run(unit, { op: 'get-lba-status', lba: 100, allocationLength: 24 }, { dataIn: 24 });
    const v = new DataView(r.data.buffer, r.data.byteOffset);
    expect(v.getUint32(0)).toBe(20);
    expect(v.getBigUint64(8)).toBe(100n);
    expect(v.getUint32(16)).toBe(1948);
    expect(r.data[20]).toBe(0);
    await expectSense(unit, { op: 'get-lba-status', lba: 2048, allocationLength: 24 }, SENSE.LBA_OUT_OF_RANGE, { dataIn: 24 });
  });

  it('UNIT ATTENTION CAPACITY DATA HAS CHANGED after the medium grows', async () => {
    const disk = new MemoryDisk({ size: DISK * 2 });
    disk.setLength(DISK);
    const { unit } = lun({ disk });
    disk.setLength(DISK * 2);
    expect(unit.refreshCapacity()).toBe(true);
    await expectSense(unit, { op: 'read-capacity', size: 10, allocationLength: 8 }, SENSE.CAPACITY_DATA_HAS_CHANGED, { dataIn: 8 });
    expect(new DataView((await run(unit, { op: 'read-capacity', size: 10, allocationLength: 8 }, { dataIn: 8 })).data.buffer).getUint32(0)).toBe(4095);
  });

  it('property: random READ/WRITE streams (every CDB size) match a model disk', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ write: fc.boolean(), size: fc.constantFrom(6 as const, 10 as const, 12 as const, 16 as const), lba: fc.integer({ min: 0, max: 2047 }), blocks: fc.integer({ min: 1, max: 16 }), seed: fc.nat(255) }),
          { maxLength: 20 },
        ),
        async (ops) => {
          const { unit } = lun();
          const model = new Uint8Array(DISK);
          for (const op of ops) {
            const blocks = Math.min(op.blocks, 2048 - op.lba);
            const bytes = blocks * 512;
            if (op.write) {
              const data = new Uint8Array(bytes).fill(op.seed);
              data[0] = op.lba & 0xff;
              const r = await run(unit, { op: 'write', size: op.size, lba: op.lba, transferLength: blocks, fua: false }, { dataOut: data });
              expect(r.status).toBe(SAM_STAT_GOOD);
              model.set(data, op.lba * 512);
            } else {
              const r = await run(unit, { op: 'read', size: op.size, lba: op.lba, transferLength: blocks, fua: false }, { dataIn: bytes });
              expect(r.data).toEqual(model.subarray(op.lba * 512, op.lba * 512 + bytes));
            }
          }
        },
      ),
      { numRuns: 20 },
    );
  });
});
