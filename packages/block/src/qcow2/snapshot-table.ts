/**
 * The qcow2 snapshot table (qcow2 spec, "Snapshots"): `nb_snapshots` entries at
 * `snapshots_offset`, each starting on an 8-byte boundary:
 *
 *   0-7   l1_table_offset      8-11  l1_size            12-13 id_str_size   14-15 name_size
 *   16-19 date_sec             20-23 date_nsec          24-31 vm_clock_nsec
 *   32-35 vm_state_size (32-bit; 0 when it does not fit)
 *   36-39 extra_data_size, then extra data, the ID string and the name (neither NUL-terminated).
 *
 * Extra data (v3 requires at least the first 16 bytes): 0-7 vm_state_size_large,
 * 8-15 disk_size (virtual size at snapshot time), 16-23 icount (-1: none). Bytes past what we know
 * are kept and written back verbatim.
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';

/** Fixed part of an entry. */
export const SNAPSHOT_HEADER_SIZE = 40;
/** The extra data this implementation writes: vm_state_size_large, disk_size, icount. */
export const SNAPSHOT_EXTRA_DATA_SIZE = 24;
/**
 * QEMU's QCOW_MAX_SNAPSHOTS: `nb_snapshots` above this is refused. With 16-bit refcounts each
 * snapshot adds one to shared clusters; the bound also keeps the in-memory list small.
 */
export const MAX_SNAPSHOTS = 65536;
/**
 * QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA: an entry with more extra data is refused. Without it one
 * entry could claim 4 GiB of "extra data".
 */
export const MAX_SNAPSHOT_EXTRA_DATA = 1024;
/**
 * QEMU's QCOW_MAX_SNAPSHOTS_SIZE (1024 bytes per snapshot on average, 64 MiB): the whole table is
 * read into memory, so its size must be bounded independently of the per-entry limits (an entry
 * may legally be ~132 KiB: 1 KiB of extra data and two 64 KiB strings, times 65536 entries would
 * be 8 GiB).
 */
export const MAX_SNAPSHOT_TABLE_SIZE = 1024 * MAX_SNAPSHOTS;

/** One internal snapshot, as stored in the table. */
export interface Qcow2Snapshot {
  /** Host offset of the snapshot's copy of the L1 table. */
  l1TableOffset: number;
  /** Entries in that L1 table. */
  l1Size: number;
  /** Unique ID string (QEMU numbers them "1", "2", ...). */
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  /** Guest clock at the snapshot, in nanoseconds (u64). */
  vmClockNsec: bigint;
  /** Size of the saved VM state (vm_state_size_large when present, else the 32-bit field). */
  vmStateSize: number;
  /** Virtual disk size at snapshot time (extra data bytes 8-15), undefined when absent. */
  diskSize: number | undefined;
  /** Instruction count at snapshot time (extra data 16-23); -1n when not recorded or absent. */
  icount: bigint;
  /** extra_data_size as read (0 for a new entry); we always write at least 24 bytes. */
  extraDataSize: number;
  /** Extra data past the 24 bytes we know, preserved verbatim. */
  unknownExtraData: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

function corrupt(message: string, offset?: number): BlockError {
  return new BlockError('CORRUPT_IMAGE', `snapshot table: ${message}`, offset === undefined ? { op: 'snapshot' } : { op: 'snapshot', offset });
}

function u64(view: DataView, at: number): bigint {
  return view.getBigUint64(at);
}

function safeNumber(value: bigint, what: string, offset: number): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${what} ${value} is beyond 2^53`, offset);
  return Number(value);
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Bytes one entry takes (unaligned end relative to its start). */
export function snapshotEntrySize(snapshot: Qcow2Snapshot): number {
  return (
    SNAPSHOT_HEADER_SIZE +
    SNAPSHOT_EXTRA_DATA_SIZE +
    snapshot.unknownExtraData.length +
    encoder.encode(snapshot.id).length +
    encoder.encode(snapshot.name).length
  );
}

/** Size of the serialised table: entries 8-byte aligned, the last one unpadded (as QEMU counts). */
export function snapshotTableSize(snapshots: readonly Qcow2Snapshot[]): number {
  let size = 0;
  for (const s of snapshots) size = align8(size) + snapshotEntrySize(s);
  return size;
}

/**
 * Serialises the table. Throws INVALID_ARGUMENT when it breaks a bound (count, strings of more
 * than 65535 bytes, unknown extra data past 1 KiB, table past 64 MiB).
 */
export function serializeSnapshotTable(snapshots: readonly Qcow2Snapshot[]): Uint8Array {
  if (snapshots.length > MAX_SNAPSHOTS) {
    throw new BlockError('INVALID_ARGUMENT', `too many snapshots (${snapshots.length}, limit ${MAX_SNAPSHOTS})`, { op: 'snapshot' });
  }
  const size = snapshotTableSize(snapshots);
  if (size > MAX_SNAPSHOT_TABLE_SIZE) {
    throw new BlockError('INVALID_ARGUMENT', `snapshot table would take ${size} bytes (limit ${MAX_SNAPSHOT_TABLE_SIZE})`, { op: 'snapshot' });
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const s of snapshots) {
    at = align8(at);
    const id = encoder.encode(s.id);
    const name = encoder.encode(s.name);
    if (id.length > 0xffff || name.length > 0xffff) {
      throw new BlockError('INVALID_ARGUMENT', 'snapshot ID and name are limited to 65535 bytes', { op: 'snapshot' });
    }
    const extraSize = SNAPSHOT_EXTRA_DATA_SIZE + s.unknownExtraData.length;
    if (extraSize > MAX_SNAPSHOT_EXTRA_DATA) {
      throw new BlockError('INVALID_ARGUMENT', `snapshot extra data too large (${extraSize})`, { op: 'snapshot' });
    }
    view.setBigUint64(at, BigInt(s.l1TableOffset));
    view.setUint32(at + 8, s.l1Size);
    view.setUint16(at + 12, id.length);
    view.setUint16(at + 14, name.length);
    view.setUint32(at + 16, s.dateSec >>> 0);
    view.setUint32(at + 20, s.dateNsec >>> 0);
    view.setBigUint64(at + 24, BigInt.asUintN(64, s.vmClockNsec));
    // qcow2 spec: a VM state that does not fit 32 bits is stored as 0 here, so that old readers
    // treat the snapshot as disk-only rather than truncating the state.
    view.setUint32(at + 32, s.vmStateSize <= 0xffffffff ? s.vmStateSize : 0);
    view.setUint32(at + 36, extraSize);
    at += SNAPSHOT_HEADER_SIZE;
    view.setBigUint64(at, BigInt(s.vmStateSize));
    view.setBigUint64(at + 8, BigInt(s.diskSize ?? 0));
    view.setBigUint64(at + 16, BigInt.asUintN(64, s.icount));
    out.set(s.unknownExtraData, at + 24);
    at += extraSize;
    out.set(id, at);
    at += id.length;
    out.set(name, at);
    at += name.length;
  }
  return out;
}

/** Options of {@link parseSnapshotTable} and {@link readSnapshotTable}. */
export interface SnapshotTableParseOptions {
  /** Virtual size to assume for entries without disk_size (QEMU does the same); default undefined. */
  readonly defaultDiskSize?: number;
}

/**
 * Parses `count` entries from `bytes` (the table from its start). CORRUPT_IMAGE when an entry runs
 * past the buffer or breaks a bound. Returns the entries and the table size in bytes.
 */
export function parseSnapshotTable(
  bytes: Uint8Array,
  count: number,
  options: SnapshotTableParseOptions = {},
): { snapshots: Qcow2Snapshot[]; size: number } {
  const result = parseEntries(bytes, count, options);
  if ('truncated' in result) throw corrupt(`entry ${result.truncated} runs past the table`);
  return result;
}

function parseEntries(
  bytes: Uint8Array,
  count: number,
  options: SnapshotTableParseOptions,
): { snapshots: Qcow2Snapshot[]; size: number } | { truncated: number } {
  if (!Number.isInteger(count) || count < 0 || count > MAX_SNAPSHOTS) throw corrupt(`nb_snapshots ${count} out of range`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const snapshots: Qcow2Snapshot[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    at = align8(at);
    const start = at;
    if (at + SNAPSHOT_HEADER_SIZE > bytes.length) return { truncated: i };
    const l1TableOffset = safeNumber(u64(view, at), 'l1_table_offset', start);
    const l1Size = view.getUint32(at + 8);
    const idSize = view.getUint16(at + 12);
    const nameSize = view.getUint16(at + 14);
    const dateSec = view.getUint32(at + 16);
    const dateNsec = view.getUint32(at + 20);
    const vmClockNsec = u64(view, at + 24);
    const vmStateSize32 = view.getUint32(at + 32);
    const extraDataSize = view.getUint32(at + 36);
    if (extraDataSize > MAX_SNAPSHOT_EXTRA_DATA) throw corrupt(`entry ${i} has too much extra data (${extraDataSize} bytes)`, start);
    at += SNAPSHOT_HEADER_SIZE;
    if (at + extraDataSize + idSize + nameSize > bytes.length) return { truncated: i };
    let vmStateSize = vmStateSize32;
    let diskSize = options.defaultDiskSize;
    let icount = -1n;
    if (extraDataSize >= 8) vmStateSize = safeNumber(u64(view, at), 'vm_state_size_large', start);
    if (extraDataSize >= 16) diskSize = safeNumber(u64(view, at + 8), 'disk_size', start);
    if (extraDataSize >= 24) icount = BigInt.asIntN(64, u64(view, at + 16));
    const unknownExtraData = extraDataSize > SNAPSHOT_EXTRA_DATA_SIZE ? bytes.slice(at + SNAPSHOT_EXTRA_DATA_SIZE, at + extraDataSize) : new Uint8Array(0);
    at += extraDataSize;
    const id = decoder.decode(bytes.subarray(at, at + idSize));
    at += idSize;
    const name = decoder.decode(bytes.subarray(at, at + nameSize));
    at += nameSize;
    if (at > MAX_SNAPSHOT_TABLE_SIZE) throw corrupt(`table larger than ${MAX_SNAPSHOT_TABLE_SIZE} bytes`, start);
    snapshots.push({ l1TableOffset, l1Size, id, name, dateSec, dateNsec, vmClockNsec, vmStateSize, diskSize, icount, extraDataSize, unknownExtraData });
  }
  return { snapshots, size: at };
}

/**
 * Reads the table from a file, entry by entry (never more than one entry's bytes beyond what it
 * has parsed, and never past 64 MiB in total), CORRUPT_IMAGE when it runs past the end of the file.
 */
export async function readSnapshotTable(
  file: BlockFile,
  offset: number,
  count: number,
  options: SnapshotTableParseOptions = {},
): Promise<{ snapshots: Qcow2Snapshot[]; size: number }> {
  if (!Number.isInteger(count) || count < 0 || count > MAX_SNAPSHOTS) throw corrupt(`nb_snapshots ${count} out of range`);
  if (count === 0) return { snapshots: [], size: 0 };
  // Read in growing chunks until the buffer holds every entry.
  let length = Math.min(MAX_SNAPSHOT_TABLE_SIZE, Math.max(4096, count * 64));
  for (;;) {
    const available = Math.max(0, Math.min(length, file.length - offset));
    const buffer = new Uint8Array(available);
    if (available > 0) await file.read(offset, buffer);
    const result = parseEntries(buffer, count, options);
    if (!('truncated' in result)) return result;
    if (available < length) throw corrupt(`entry ${result.truncated} extends past the end of the file`, offset);
    if (length >= MAX_SNAPSHOT_TABLE_SIZE) throw corrupt(`table larger than ${MAX_SNAPSHOT_TABLE_SIZE} bytes`, offset);
    length = Math.min(MAX_SNAPSHOT_TABLE_SIZE, length * 4);
  }
}
