import { BlockError, type BlockDriver } from '@virtio-ts/block';
import { BackendError } from '../errors.js';
import { readInto, writeFrom } from '../blk/data-transfer.js';
import { decodeCdb, type Cdb } from './cdb.js';
import { SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD } from './constants.js';
import { standardInquiry, vpdPage, type InquiryIdentity, type InquiryLimits } from './inquiry.js';
import { modeSelect, modeSense } from './mode-pages.js';
import { SENSE, encodeFixedSense, type SenseCode } from './sense.js';
import { copyToViews, gatherViews, sliceViews, viewsLength } from './views.js';

/** Options of a {@link ScsiLogicalUnit}. */
export interface ScsiLogicalUnitOptions {
  /** The medium. Its `requestAlignment` (at least 512) becomes the logical block size. */
  readonly driver: BlockDriver;
  /** Report write protection and fail writes with DATA PROTECT. Default: the driver's `readOnly`. */
  readonly readOnly?: boolean;
  readonly vendor?: string;
  readonly product?: string;
  readonly revision?: string;
  /** Unit serial number (VPD 0x80), printable ASCII, at most 36 bytes. Default ''. */
  readonly serial?: string;
  /** NAA 5 WWN for VPD 0x83 (a 64-bit value whose top nibble is 5). */
  readonly wwn?: bigint;
  /** Write cache enabled after power on (caching page WCE). Default true. */
  readonly writeCache?: boolean;
  /** Largest READ/WRITE/VERIFY transfer in bytes (the target's bound). Default 32 MiB. */
  readonly maxTransferBytes?: number;
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. Default 64. */
  readonly maxUnmapDescriptors?: number;
}

/** The data buffers of one command, as views (over guest memory) in order. */
export interface ScsiDataBuffers {
  readonly dataIn: readonly Uint8Array[];
  readonly dataOut: readonly Uint8Array[];
}

/** How a command ended. */
export interface ScsiCommandResult {
  /** SAM status byte. */
  readonly status: number;
  /** Fixed-format sense data with CHECK CONDITION. */
  readonly sense?: Uint8Array;
  /** Bytes written from the start of data-in. */
  readonly dataInLength: number;
  /** Bytes taken from the start of data-out. */
  readonly dataOutLength: number;
  /** The CDB needs more data than the buffers hold (virtio VIRTIO_SCSI_S_OVERRUN, §5.6.6.1). */
  readonly overrun?: boolean;
  /** The command that ran (undefined when the CDB did not decode). */
  readonly cdb?: Cdb;
}

/** What a command needs from its target (REPORT LUNS is answered for the whole target). */
export interface ScsiTargetView {
  /** LUN numbers of the target, ascending. */
  luns(): readonly number[];
}

/** Bounce buffer size for WRITE SAME, VERIFY and zero filling. */
const CHUNK = 256 * 1024;

/** Internal: ends a command with CHECK CONDITION (caught in `execute`, never escapes). */
class CheckCondition extends Error {
  constructor(
    readonly code: SenseCode,
    readonly information?: number,
  ) {
    super(`CHECK CONDITION ${code.key}/${code.asc}/${code.ascq}`);
  }
}
/** Internal: the CDB needs more data than the buffers hold (caught in `execute`). */
class Overrun extends Error {}

/**
 * One SCSI logical unit (a direct-access block device, SBC-3) backed by a {@link BlockDriver}:
 * decodes CDBs, keeps unit attention conditions, the write cache mode and the medium state, and
 * answers every command with a status, fixed-format sense data and the data-in bytes. Hostile
 * CDBs (H12) end in CHECK CONDITION; no allocation is sized by a CDB field beyond a fixed bound.
 */
export class ScsiLogicalUnit {
  readonly driver: BlockDriver;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly identity: InquiryIdentity;
  private readonly defaultWriteCache: boolean;
  private writeCacheFlag: boolean;
  private stopped = false;
  private blockCount: number;
  private readonly maxTransferBytes: number;
  private readonly maxUnmapDescriptors: number;
  /** Pending unit attention conditions, oldest first (SPC-4 §5.14). */
  private readonly unitAttentions: SenseCode[] = [];

  constructor(options: ScsiLogicalUnitOptions) {
    const check = (ok: boolean, field: string, message: string) => {
      if (!ok) throw new BackendError('INVALID_OPTION', `scsi: ${field} ${message}`, { device: 'scsi', field });
    };
    this.driver = options.driver;
    this.blockSize = Math.max(512, options.driver.requestAlignment);
    check(this.blockSize <= 4096 && (this.blockSize & (this.blockSize - 1)) === 0, 'driver.requestAlignment', 'must be a power of two up to 4096');
    this.readOnly = options.readOnly ?? options.driver.readOnly;
    const printable = (s: string, max: number) => s.length <= max && /^[\x20-\x7e]*$/.test(s);
    const vendor = options.vendor ?? 'VIRTIOTS';
    const product = options.product ?? 'VIRTUAL DISK';
    const revision = options.revision ?? '1.0';
    const serial = options.serial ?? '';
    check(printable(vendor, 8), 'vendor', 'must be printable ASCII of at most 8 bytes');
    check(printable(product, 16), 'product', 'must be printable ASCII of at most 16 bytes');
    check(printable(revision, 4), 'revision', 'must be printable ASCII of at most 4 bytes');
    check(printable(serial, 36), 'serial', 'must be printable ASCII of at most 36 bytes');
    check(options.wwn === undefined || (options.wwn >> 60n === 5n && options.wwn < 1n << 64n), 'wwn', 'must be a 64-bit NAA 5 name');
    this.identity = { vendor, product, revision, serial, wwn: options.wwn };
    this.defaultWriteCache = options.writeCache ?? true;
    this.writeCacheFlag = this.defaultWriteCache;
    this.maxTransferBytes = options.maxTransferBytes ?? 32 << 20;
    check(Number.isSafeInteger(this.maxTransferBytes) && this.maxTransferBytes >= this.blockSize && this.maxTransferBytes <= 1 << 30, 'maxTransferBytes', 'must be a block to 1 GiB');
    this.maxUnmapDescriptors = options.maxUnmapDescriptors ?? 64;
    check(Number.isInteger(this.maxUnmapDescriptors) && this.maxUnmapDescriptors >= 1 && this.maxUnmapDescriptors <= 4095, 'maxUnmapDescriptors', 'must be 1..4095');
    this.blockCount = Math.floor(options.driver.length / this.blockSize);
    this.unitAttentions.push(SENSE.POWER_ON_RESET);
  }

  /** Logical blocks on the medium. */
  get blocks(): number {
    return this.blockCount;
  }

  /** The caching page's WCE bit. */
  get writeCache(): boolean {
    return this.writeCacheFlag;
  }

  /** True while a START STOP UNIT stopped the unit (media access is NOT READY). */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Pending unit attention conditions (oldest first). */
  get pendingUnitAttentions(): readonly SenseCode[] {
    return this.unitAttentions;
  }

  /** Establishes a unit attention condition (once per kind). */
  addUnitAttention(code: SenseCode): void {
    if (!this.unitAttentions.some((u) => u.asc === code.asc && u.ascq === code.ascq)) this.unitAttentions.push(code);
  }

  /** A reset (device reset, LUN reset, I_T nexus loss): mode back to default and a unit attention. */
  reset(code: SenseCode = SENSE.POWER_ON_RESET): void {
    this.writeCacheFlag = this.defaultWriteCache;
    this.stopped = false;
    this.unitAttentions.length = 0;
    this.unitAttentions.push(code);
  }

  /** Restores the caching mode and medium state (from a validated snapshot). */
  restoreState(state: { writeCache: boolean; stopped: boolean }): void {
    this.writeCacheFlag = state.writeCache;
    this.stopped = state.stopped;
  }

  /** Re-reads `driver.length`; on a change sets CAPACITY DATA HAS CHANGED and returns true. */
  refreshCapacity(): boolean {
    const blocks = Math.floor(this.driver.length / this.blockSize);
    if (blocks === this.blockCount) return false;
    this.blockCount = blocks;
    this.addUnitAttention(SENSE.CAPACITY_DATA_HAS_CHANGED);
    return true;
  }

  /** The limits of VPD 0xB0 / 0xB2. */
  limits(): InquiryLimits {
    const unmap = this.unmapSupported();
    return {
      maxTransferBlocks: Math.floor(this.maxTransferBytes / this.blockSize),
      optimalTransferBlocks: Math.floor(Math.min(this.maxTransferBytes, 1 << 20) / this.blockSize),
      maxUnmapBlocks: unmap ? Math.min(0xffff_ffff, Math.floor(0x7fff_f000 / this.blockSize)) : 0,
      maxUnmapDescriptors: this.maxUnmapDescriptors,
      maxWriteSameBlocks: Math.floor(0x7fff_f000 / this.blockSize),
      unmap,
      physicalBlockExponent: 0,
    };
  }

  /** Runs one command (CDB bytes as received, possibly padded to `cdb_size`). Never throws. */
  async execute(cdbBytes: Uint8Array, io: ScsiDataBuffers, target: ScsiTargetView): Promise<ScsiCommandResult> {
    const decoded = decodeCdb(cdbBytes);
    if (!decoded.ok) {
      return this.checkCondition(decoded.problem === 'INVALID_OPCODE' ? SENSE.INVALID_COMMAND_OPERATION_CODE : SENSE.INVALID_FIELD_IN_CDB);
    }
    const cdb = decoded.cdb;
    // SPC-4 §5.14: a pending unit attention ends any command but INQUIRY, REPORT LUNS and REQUEST SENSE.
    if (cdb.op !== 'inquiry' && cdb.op !== 'report-luns' && cdb.op !== 'request-sense') {
      const ua = this.unitAttentions.shift();
      if (ua !== undefined) return { ...this.checkCondition(ua), cdb };
    }
    try {
      const result = await this.run(cdb, io, target);
      return { status: SAM_STAT_GOOD, dataInLength: result.dataIn, dataOutLength: result.dataOut, cdb };
    } catch (error) {
      if (error instanceof CheckCondition) return { ...this.checkCondition(error.code, error.information), cdb };
      if (error instanceof Overrun) return { status: SAM_STAT_GOOD, dataInLength: 0, dataOutLength: 0, overrun: true, cdb };
      const write = cdb.op === 'write' || cdb.op === 'write-same' || cdb.op === 'unmap' || cdb.op === 'synchronize-cache';
      if (BlockError.isInstance(error) && error.code === 'READ_ONLY') return { ...this.checkCondition(SENSE.WRITE_PROTECTED), cdb };
      return { ...this.checkCondition(write ? SENSE.WRITE_ERROR : SENSE.UNRECOVERED_READ_ERROR), cdb };
    }
  }

  private checkCondition(code: SenseCode, information?: number): ScsiCommandResult {
    return { status: SAM_STAT_CHECK_CONDITION, sense: encodeFixedSense(code, information), dataInLength: 0, dataOutLength: 0 };
  }

  private unmapSupported(): boolean {
    return !this.readOnly && this.driver.discard !== undefined;
  }

  /** Returns parameter data truncated to the allocation length and the data-in buffer (H9). */
  private dataIn(io: ScsiDataBuffers, data: Uint8Array, allocationLength: number): { dataIn: number; dataOut: number } {
    return { dataIn: copyToViews(io.dataIn, data.subarray(0, Math.min(data.length, allocationLength))), dataOut: 0 };
  }

  private checkRange(lba: number, blocks: number): void {
    if (lba > this.blockCount || blocks > this.blockCount - lba) throw new CheckCondition(SENSE.LBA_OUT_OF_RANGE);
  }

  private checkMedium(): void {
    if (this.stopped) throw new CheckCondition({ key: 0x2, asc: 0x04, ascq: 0x02 }); // NOT READY, INITIALIZING COMMAND REQUIRED
  }

  private checkWritable(): void {
    if (this.readOnly) throw new CheckCondition(SENSE.WRITE_PROTECTED);
  }

  private async run(cdb: Cdb, io: ScsiDataBuffers, target: ScsiTargetView): Promise<{ dataIn: number; dataOut: number }> {
    const none = { dataIn: 0, dataOut: 0 };
    switch (cdb.op) {
      case 'test-unit-ready':
        this.checkMedium();
        return none;
      case 'request-sense': {
        // Autosense reports errors with the command; REQUEST SENSE returns (and clears) a unit attention.
        const ua = this.unitAttentions.shift();
        return this.dataIn(io, encodeFixedSense(ua ?? SENSE.NO_SENSE), cdb.allocationLength);
      }
      case 'inquiry': {
        if (!cdb.evpd) {
          if (cdb.pageCode !== 0) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
          return this.dataIn(io, standardInquiry(this.identity), cdb.allocationLength);
        }
        const page = vpdPage(cdb.pageCode, this.identity, this.limits());
        if (page === undefined) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
        return this.dataIn(io, page, cdb.allocationLength);
      }
      case 'report-luns':
        return this.dataIn(io, reportLuns(cdb.selectReport, cdb.allocationLength, target.luns(), this), cdb.allocationLength);
      case 'read-capacity': {
        this.checkMedium();
        const last = this.blockCount - 1;
        if (cdb.size === 10) {
          const b = new Uint8Array(8);
          const v = new DataView(b.buffer);
          v.setUint32(0, Math.min(Math.max(last, 0), 0xffff_ffff));
          v.setUint32(4, this.blockSize);
          return this.dataIn(io, b, 8);
        }
        const b = new Uint8Array(32);
        const v = new DataView(b.buffer);
        v.setBigUint64(0, BigInt(Math.max(last, 0)));
        v.setUint32(8, this.blockSize);
        if (this.unmapSupported()) b[14] = 0x80; // LBPME
        return this.dataIn(io, b, cdb.allocationLength);
      }
      case 'read':
      case 'write':
        return this.readWrite(cdb, io);
      case 'verify':
        return this.verify(cdb, io);
      case 'synchronize-cache':
        this.checkMedium();
        this.checkRange(cdb.lba, cdb.numberOfBlocks);
        await this.driver.flush();
        return none;
      case 'write-same':
        return this.writeSame(cdb, io);
      case 'unmap':
        return this.unmap(cdb, io);
      case 'get-lba-status':
        return this.getLbaStatus(cdb, io);
      case 'mode-sense': {
        const data = modeSense(cdb, { blocks: this.blockCount, blockSize: this.blockSize, readOnly: this.readOnly, writeCache: this.writeCacheFlag }, this.defaultWriteCache);
        if (!(data instanceof Uint8Array)) throw new CheckCondition(data);
        return this.dataIn(io, data, cdb.allocationLength);
      }
      case 'mode-select': {
        if (cdb.sp || !cdb.pf) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
        if (cdb.parameterListLength > viewsLength(io.dataOut)) throw new Overrun();
        const data = gatherViews(io.dataOut, cdb.parameterListLength);
        const result = modeSelect(cdb.size, data, { blocks: this.blockCount, blockSize: this.blockSize, readOnly: this.readOnly, writeCache: this.writeCacheFlag });
        if (!('writeCache' in result)) throw new CheckCondition(result);
        // Leaving writeback: what the cache holds becomes durable first.
        if (this.writeCacheFlag && !result.writeCache) await this.driver.flush();
        this.writeCacheFlag = result.writeCache;
        return { dataIn: 0, dataOut: data.length };
      }
      case 'start-stop-unit':
        // SBC-3 §5.25: no medium to load or eject (non-removable); power conditions are accepted.
        if (cdb.loej) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
        if (cdb.powerCondition === 0) {
          if (!cdb.start) await this.driver.flush();
          this.stopped = !cdb.start;
        }
        return none;
    }
  }

  private async readWrite(cdb: Extract<Cdb, { op: 'read' | 'write' }>, io: ScsiDataBuffers): Promise<{ dataIn: number; dataOut: number }> {
    this.checkMedium();
    if (cdb.op === 'write') this.checkWritable();
    this.checkRange(cdb.lba, cdb.transferLength);
    const bytes = cdb.transferLength * this.blockSize;
    if (bytes > this.maxTransferBytes) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
    if (bytes === 0) return { dataIn: 0, dataOut: 0 };
    const offset = cdb.lba * this.blockSize;
    if (cdb.op === 'read') {
      if (bytes > viewsLength(io.dataIn)) throw new Overrun();
      await readInto(this.driver, offset, sliceViews(io.dataIn, 0, bytes), this.blockSize);
      return { dataIn: bytes, dataOut: 0 };
    }
    if (bytes > viewsLength(io.dataOut)) throw new Overrun();
    await writeFrom(this.driver, offset, sliceViews(io.dataOut, 0, bytes), this.blockSize);
    // Write-through (WCE 0) or FUA: the data is on the medium before GOOD.
    if (!this.writeCacheFlag || cdb.fua) await this.driver.flush();
    return { dataIn: 0, dataOut: bytes };
  }

  private async verify(cdb: Extract<Cdb, { op: 'verify' }>, io: ScsiDataBuffers): Promise<{ dataIn: number; dataOut: number }> {
    this.checkMedium();
    if (cdb.bytchk === 2) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
    this.checkRange(cdb.lba, cdb.verificationLength);
    const bytes = cdb.verificationLength * this.blockSize;
    if (bytes > this.maxTransferBytes) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
    const expectedOut = cdb.bytchk === 0 || bytes === 0 ? 0 : cdb.bytchk === 1 ? bytes : this.blockSize;
    if (expectedOut > viewsLength(io.dataOut)) throw new Overrun();
    const buffer = new Uint8Array(Math.min(CHUNK, Math.max(bytes, this.blockSize)));
    const compare = expectedOut > 0 ? gatherViews(io.dataOut, expectedOut) : undefined;
    for (let done = 0; done < bytes; done += buffer.length) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, bytes - done));
      await this.driver.read(cdb.lba * this.blockSize + done, chunk);
      if (compare === undefined) continue;
      for (let i = 0; i < chunk.length; i++) {
        const expected = cdb.bytchk === 1 ? compare[done + i]! : compare[(done + i) % this.blockSize]!;
        if (chunk[i] !== expected) throw new CheckCondition(SENSE.MISCOMPARE_DURING_VERIFY, done + i);
      }
    }
    return { dataIn: 0, dataOut: expectedOut };
  }

  private async writeSame(cdb: Extract<Cdb, { op: 'write-same' }>, io: ScsiDataBuffers): Promise<{ dataIn: number; dataOut: number }> {
    this.checkMedium();
    this.checkWritable();
    if (cdb.anchor || cdb.numberOfBlocks === 0) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB); // ANC_SUP 0, WSNZ 1
    if (cdb.numberOfBlocks > this.limits().maxWriteSameBlocks) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
    this.checkRange(cdb.lba, cdb.numberOfBlocks);
    let block: Uint8Array;
    if (cdb.ndob) {
      block = new Uint8Array(this.blockSize);
    } else {
      if (viewsLength(io.dataOut) < this.blockSize) throw new Overrun();
      block = gatherViews(io.dataOut, this.blockSize);
    }
    const offset = cdb.lba * this.blockSize;
    const length = cdb.numberOfBlocks * this.blockSize;
    const zero = block.every((b) => b === 0);
    let done = false;
    if (zero && this.driver.writeZeroes !== undefined) {
      try {
        await this.driver.writeZeroes(offset, length, { mayUnmap: cdb.unmap });
        done = true;
      } catch (error) {
        if (!(BlockError.isInstance(error) && error.code === 'UNSUPPORTED')) throw error;
      }
    }
    if (!done) {
      const pattern = new Uint8Array(Math.min(CHUNK, length));
      for (let i = 0; i < pattern.length; i += this.blockSize) pattern.set(block, i);
      for (let at = 0; at < length; at += pattern.length) await this.driver.write(offset + at, pattern.subarray(0, Math.min(pattern.length, length - at)));
    }
    if (!this.writeCacheFlag) await this.driver.flush();
    return { dataIn: 0, dataOut: cdb.ndob ? 0 : this.blockSize };
  }

  private async unmap(cdb: Extract<Cdb, { op: 'unmap' }>, io: ScsiDataBuffers): Promise<{ dataIn: number; dataOut: number }> {
    if (!this.unmapSupported()) {
      this.checkWritable();
      throw new CheckCondition(SENSE.INVALID_COMMAND_OPERATION_CODE);
    }
    this.checkMedium();
    if (cdb.anchor) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
    if (cdb.parameterListLength === 0) return { dataIn: 0, dataOut: 0 };
    if (cdb.parameterListLength > viewsLength(io.dataOut)) throw new Overrun();
    if (cdb.parameterListLength < 8) throw new CheckCondition(SENSE.PARAMETER_LIST_LENGTH_ERROR);
    const data = gatherViews(io.dataOut, cdb.parameterListLength);
    const v = new DataView(data.buffer);
    const descriptorBytes = v.getUint16(2);
    if (8 + descriptorBytes > data.length) throw new CheckCondition(SENSE.PARAMETER_LIST_LENGTH_ERROR);
    const count = Math.floor(descriptorBytes / 16);
    if (count > this.maxUnmapDescriptors) throw new CheckCondition(SENSE.INVALID_FIELD_IN_PARAMETER_LIST);
    const ranges: { lba: number; blocks: number }[] = [];
    const maxBlocks = this.limits().maxUnmapBlocks;
    for (let i = 0; i < count; i++) {
      const lba = Number(v.getBigUint64(8 + i * 16));
      const blocks = v.getUint32(8 + i * 16 + 8);
      if (blocks > maxBlocks) throw new CheckCondition(SENSE.INVALID_FIELD_IN_PARAMETER_LIST);
      this.checkRange(lba, blocks);
      ranges.push({ lba, blocks });
    }
    for (const r of ranges) {
      if (r.blocks === 0) continue;
      // SBC-3 §5.28: unmapped blocks read back unspecified data; a driver that cannot discard the range still succeeds.
      try {
        await this.driver.discard!(r.lba * this.blockSize, r.blocks * this.blockSize);
      } catch (error) {
        if (!(BlockError.isInstance(error) && error.code === 'UNSUPPORTED')) throw error;
      }
    }
    return { dataIn: 0, dataOut: data.length };
  }

  private async getLbaStatus(cdb: Extract<Cdb, { op: 'get-lba-status' }>, io: ScsiDataBuffers): Promise<{ dataIn: number; dataOut: number }> {
    this.checkMedium();
    if (cdb.lba >= this.blockCount) throw new CheckCondition(SENSE.LBA_OUT_OF_RANGE);
    if (cdb.allocationLength < 24) return this.dataIn(io, new Uint8Array(0), 0);
    // At most 32 descriptors whatever the allocation length.
    const max = Math.min(32, Math.floor((cdb.allocationLength - 8) / 16));
    const descriptors: { lba: number; blocks: number; status: number }[] = [];
    let lba = cdb.lba;
    while (descriptors.length < max && lba < this.blockCount) {
      const left = Math.min(this.blockCount - lba, 0xffff_ffff);
      let blocks = left;
      let status = 0; // mapped
      if (this.driver.blockStatus !== undefined) {
        const s = await this.driver.blockStatus(lba * this.blockSize, left * this.blockSize);
        blocks = Math.max(1, Math.min(left, Math.floor(s.length / this.blockSize)));
        status = s.data ? 0 : 1; // deallocated
      }
      const previous = descriptors.at(-1);
      if (previous !== undefined && previous.status === status && previous.lba + previous.blocks === lba && previous.blocks + blocks <= 0xffff_ffff) previous.blocks += blocks;
      else descriptors.push({ lba, blocks, status });
      lba += blocks;
      if (this.driver.blockStatus === undefined) break;
    }
    const out = new Uint8Array(8 + descriptors.length * 16);
    const v = new DataView(out.buffer);
    v.setUint32(0, out.length - 4);
    descriptors.forEach((d, i) => {
      v.setBigUint64(8 + i * 16, BigInt(d.lba));
      v.setUint32(16 + i * 16, d.blocks);
      out[20 + i * 16] = d.status;
    });
    return this.dataIn(io, out, cdb.allocationLength);
  }
}

/**
 * REPORT LUNS parameter data (SPC-4 §6.33) for a target's LUNs: peripheral addressing below 256,
 * flat space addressing above (SAM-5 §4.7). Clears REPORTED LUNS DATA HAS CHANGED on `unit`.
 */
export function reportLuns(selectReport: number, allocationLength: number, luns: readonly number[], unit?: ScsiLogicalUnit): Uint8Array {
  if (selectReport > 2 || allocationLength < 16) throw new CheckCondition(SENSE.INVALID_FIELD_IN_CDB);
  const list = selectReport === 1 ? [] : luns;
  const out = new Uint8Array(8 + list.length * 8);
  new DataView(out.buffer).setUint32(0, list.length * 8);
  list.forEach((lun, i) => {
    out[8 + i * 8] = lun < 256 ? 0 : 0x40 | (lun >> 8);
    out[9 + i * 8] = lun & 0xff;
  });
  if (unit !== undefined) {
    const at = unit.pendingUnitAttentions.findIndex((u) => u.asc === 0x3f && u.ascq === 0x0e);
    if (at >= 0) (unit.pendingUnitAttentions as SenseCode[]).splice(at, 1);
  }
  return out;
}

/**
 * A command to an address of an existing target with no logical unit (SPC-4 §6.6.2, §6.33):
 * INQUIRY answers peripheral qualifier 3, REPORT LUNS the target's list, REQUEST SENSE reports
 * LOGICAL UNIT NOT SUPPORTED as data; anything else is CHECK CONDITION LOGICAL UNIT NOT SUPPORTED.
 */
export function executeWithoutUnit(cdbBytes: Uint8Array, io: ScsiDataBuffers, target: ScsiTargetView, identity: InquiryIdentity): ScsiCommandResult {
  const fail = (code: SenseCode): ScsiCommandResult => ({ status: SAM_STAT_CHECK_CONDITION, sense: encodeFixedSense(code), dataInLength: 0, dataOutLength: 0 });
  const decoded = decodeCdb(cdbBytes);
  if (!decoded.ok) return fail(decoded.problem === 'INVALID_OPCODE' ? SENSE.INVALID_COMMAND_OPERATION_CODE : SENSE.INVALID_FIELD_IN_CDB);
  const cdb = decoded.cdb;
  const give = (data: Uint8Array, allocationLength: number): ScsiCommandResult => ({
    status: SAM_STAT_GOOD,
    dataInLength: copyToViews(io.dataIn, data.subarray(0, Math.min(data.length, allocationLength))),
    dataOutLength: 0,
    cdb,
  });
  try {
    switch (cdb.op) {
      case 'inquiry':
        if (cdb.evpd || cdb.pageCode !== 0) return fail(SENSE.INVALID_FIELD_IN_CDB);
        return give(standardInquiry(identity, 0x7f), cdb.allocationLength);
      case 'report-luns':
        return give(reportLuns(cdb.selectReport, cdb.allocationLength, target.luns()), cdb.allocationLength);
      case 'request-sense':
        return give(encodeFixedSense(SENSE.LOGICAL_UNIT_NOT_SUPPORTED), cdb.allocationLength);
      default:
        return fail(SENSE.LOGICAL_UNIT_NOT_SUPPORTED);
    }
  } catch (error) {
    if (error instanceof CheckCondition) return fail(error.code);
    throw error;
  }
}
