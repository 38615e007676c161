/**
 * The snapshot table as `qemu-img check` reads it (QEMU block/qcow2-snapshot.c,
 * qcow2_check_read_snapshot_table and qcow2_do_read_snapshots in repair mode), so that a hostile
 * table is reported, and with `-r all` repaired, exactly as qemu-img does:
 *
 * - more than 65536 snapshots: without repair "snapshot table too large" and the check fails;
 *   with `-r all` the entries past 65536 are dropped ("Discarding N overhanging snapshots") and
 *   the header's nb_snapshots is lowered at once (their clusters then show as leaks, fixed too);
 * - an entry with more than 1 KiB of extra data: without repair "Too much extra metadata in
 *   snapshot table entry i" and the check fails; with repair the extra data is cut to 1 KiB and
 *   the table is rewritten after the refcount check;
 * - a table over 64 MiB: without repair "Snapshot table is too big", with repair the entries from
 *   the one that crosses the limit are dropped;
 * - a v3 entry with less than 16 bytes of extra data: "snapshot table entry i is incomplete", one
 *   corruption each, fixed by rewriting the table.
 *
 * Bytes past the end of the file read as zeroes (as QEMU's block layer reads them). Nothing is
 * allocated from an untrusted size beyond QEMU's bounds: at most 65536 entries, each at most
 * 40 + 1024 + 2 * 65535 bytes, and the walk stops at 64 MiB of table.
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import type { Qcow2Header } from './header.js';
import {
  MAX_SNAPSHOT_EXTRA_DATA,
  MAX_SNAPSHOT_TABLE_SIZE,
  MAX_SNAPSHOTS,
  SNAPSHOT_EXTRA_DATA_SIZE,
  SNAPSHOT_HEADER_SIZE,
  type Qcow2Snapshot,
} from './snapshot-table.js';

/** What the check learnt from the snapshot table. */
export interface CheckedSnapshotTable {
  /** The entries kept (after dropping overhanging ones), with extra data cut to QEMU's limit. */
  readonly snapshots: Qcow2Snapshot[];
  /** Bytes of the table the kept entries span (QEMU's snapshots_size): these clusters are referenced. */
  readonly size: number;
  /** Corruptions found (entries dropped, extra data cut, incomplete entries). */
  corruptions: number;
  /** Corruptions already fixed here (the header's nb_snapshots lowered). */
  corruptionsFixed: number;
}

/** The findings go to `log` in qemu-img's wording. */
export type CheckLog = (message: string) => void;

const INT64_MAX = 2n ** 63n - 1n;
const INT32_MAX = 2 ** 31 - 1;
const align8 = (n: number): number => Math.ceil(n / 8) * 8;
const decoder = new TextDecoder('utf-8', { fatal: false });

/** The check cannot go on (qemu-img: "Check failed: ..."); the reason is in the message. */
function checkFailed(message: string): BlockError {
  return new BlockError('CORRUPT_IMAGE', `check failed: ${message}`, { op: 'check' });
}

const WINDOW = 1024 * 1024;

/** Sequential reads through a 1 MiB window, so that 65536 small entries are not 200000 host reads. */
class TableReader {
  readonly #file: BlockFile;
  #start = -1;
  #window = new Uint8Array(0);
  constructor(file: BlockFile) {
    this.#file = file;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (length > WINDOW) {
      const bytes = new Uint8Array(length);
      if (offset < this.#file.length) await this.#file.read(offset, bytes);
      return bytes;
    }
    if (this.#start < 0 || offset < this.#start || offset + length > this.#start + this.#window.length) {
      this.#start = offset;
      this.#window = new Uint8Array(WINDOW);
      if (offset < this.#file.length) await this.#file.read(offset, this.#window);
    }
    return this.#window.slice(offset - this.#start, offset - this.#start + length);
  }
}

/**
 * qcow2_check_read_snapshot_table: validates and reads the table, dropping what QEMU drops when
 * `repair` (`-r all`). Throws CORRUPT_IMAGE "check failed" where qemu-img's check fails.
 */
export async function readSnapshotTableForCheck(file: BlockFile, header: Qcow2Header, repair: boolean, log: CheckLog): Promise<CheckedSnapshotTable> {
  const cs = 2 ** header.clusterBits;
  let count = header.nbSnapshots;
  const offset = header.snapshotsOffset;
  let clustersReduced = 0;
  let extraDataDropped = 0;
  if (count > MAX_SNAPSHOTS && repair) {
    log(`Discarding ${count - MAX_SNAPSHOTS} overhanging snapshots`);
    clustersReduced += count - MAX_SNAPSHOTS;
    count = MAX_SNAPSHOTS;
  }
  // qcow2_validate_table(snapshots_offset, nb_snapshots, sizeof(QCowSnapshotHeader), ...).
  const invalid =
    count > MAX_SNAPSHOTS
      ? 'snapshot table too large'
      : INT64_MAX - BigInt(count * SNAPSHOT_HEADER_SIZE) < BigInt(offset) || offset % cs !== 0
        ? 'snapshot table offset invalid'
        : undefined;
  if (invalid !== undefined) {
    log(`ERROR ${invalid}`);
    if (count > MAX_SNAPSHOTS) log(`You can force-remove all ${count - MAX_SNAPSHOTS} overhanging snapshots with qemu-img check -r all`);
    throw checkFailed(invalid);
  }

  const reader = new TableReader(file);
  const snapshots: Qcow2Snapshot[] = [];
  let at = offset;
  let tableLength = 0;
  for (let i = 0; i < count; i++) {
    const before = at;
    tableLength = align8(tableLength);
    at = align8(at);
    const fixed = await reader.read(at, SNAPSHOT_HEADER_SIZE);
    const view = new DataView(fixed.buffer);
    at += SNAPSHOT_HEADER_SIZE;
    const l1TableOffset = view.getBigUint64(0);
    const l1Size = view.getUint32(8);
    const idSize = view.getUint16(12);
    const nameSize = view.getUint16(14);
    const dateSec = view.getUint32(16);
    const dateNsec = view.getUint32(20);
    const vmClockNsec = view.getBigUint64(24);
    const vmStateSize32 = view.getUint32(32);
    const storedExtraSize = view.getUint32(36);
    let extraDataSize = storedExtraSize;
    if (extraDataSize > MAX_SNAPSHOT_EXTRA_DATA) {
      if (!repair) {
        log(`ERROR failed to read the snapshot table: Too much extra metadata in snapshot table entry ${i}`);
        log('You can force-remove this extra metadata with qemu-img check -r all');
        throw checkFailed(`too much extra metadata in snapshot table entry ${i}`);
      }
      log(`Discarding too much extra metadata in snapshot table entry ${i} (${extraDataSize} > ${MAX_SNAPSHOT_EXTRA_DATA})`);
      extraDataDropped++;
      extraDataSize = MAX_SNAPSHOT_EXTRA_DATA;
    }
    const extra = await reader.read(at, extraDataSize);
    const extraView = new DataView(extra.buffer);
    // The offset moves past all the stored extra data, even when only 1 KiB of it is kept.
    at += storedExtraSize;
    const id = decoder.decode(await reader.read(at, idSize));
    at += idSize;
    const name = decoder.decode(await reader.read(at, nameSize));
    at += nameSize;
    tableLength += SNAPSHOT_HEADER_SIZE + extraDataSize + idSize + nameSize;
    if (tableLength > MAX_SNAPSHOT_TABLE_SIZE || at - offset > INT32_MAX) {
      if (!repair) {
        log('ERROR failed to read the snapshot table: Snapshot table is too big');
        log(`You can force-remove all ${count - i} overhanging snapshots with qemu-img check -r all`);
        throw checkFailed('snapshot table is too big');
      }
      log(`Discarding ${count - i} overhanging snapshots (snapshot table is too big)`);
      clustersReduced += count - i;
      count = i;
      at = before;
      break;
    }
    const vmStateLarge = extraDataSize >= 8 ? extraView.getBigUint64(0) : BigInt(vmStateSize32);
    const diskSize = extraDataSize >= 16 ? extraView.getBigUint64(8) : BigInt(header.size);
    snapshots.push({
      // Offsets beyond 2^53 cannot be cluster aligned in a file we can check; keep them failing.
      l1TableOffset: l1TableOffset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(l1TableOffset),
      l1Size,
      id,
      name,
      dateSec,
      dateNsec,
      vmClockNsec,
      vmStateSize: Number(vmStateLarge > BigInt(Number.MAX_SAFE_INTEGER) ? 0n : vmStateLarge),
      diskSize: Number(diskSize > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(header.size) : diskSize),
      icount: extraDataSize >= 24 ? BigInt.asIntN(64, extraView.getBigUint64(16)) : -1n,
      extraDataSize,
      unknownExtraData: extraDataSize > SNAPSHOT_EXTRA_DATA_SIZE ? extra.slice(SNAPSHOT_EXTRA_DATA_SIZE) : new Uint8Array(0),
    });
  }
  const result: CheckedSnapshotTable = {
    snapshots,
    size: count === 0 ? 0 : at - offset,
    corruptions: clustersReduced + extraDataDropped,
    corruptionsFixed: 0,
  };
  if (clustersReduced > 0) {
    // The header must agree with the kept entries before the refcount check walks them.
    const field = new Uint8Array(4);
    new DataView(field.buffer).setUint32(0, count);
    await file.write(60, field);
    await file.flush();
    header.nbSnapshots = count;
    result.corruptionsFixed += clustersReduced;
    result.corruptions -= clustersReduced;
  }
  if (header.version >= 3) {
    snapshots.forEach((sn, i) => {
      if (sn.extraDataSize >= 16) return;
      result.corruptions++;
      log(`${repair ? 'Repairing' : 'ERROR'} snapshot table entry ${i} is incomplete`);
    });
  }
  return result;
}
