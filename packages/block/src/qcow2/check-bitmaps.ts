/**
 * Persistent dirty bitmaps in the consistency check (qcow2 spec, "Bitmaps extension", "Bitmap
 * directory", "Bitmap table"; QEMU block/qcow2-bitmap.c, qcow2_check_bitmaps_refcounts): the
 * bitmap directory, every bitmap table and every bitmap data cluster are references, so that
 * their clusters are neither leaks nor overwritten by a repair.
 *
 * As QEMU:
 * - the extension is used only while autoclear bit 0 is set; otherwise a program without bitmap
 *   support changed the image, the bitmaps are stale and their clusters are leaks;
 * - an extension QEMU refuses at open (wrong length, reserved field, zero or more than 65535
 *   bitmaps, unaligned directory, directory over 64 MiB) makes the check fail before it starts;
 * - a directory that does not parse (entries running past it, a count that differs from the
 *   extension's, extra data, an entry breaking a constraint) or a bitmap table with a bad entry is
 *   one corruption and the check fails ("Check failed: Invalid argument").
 *
 * Bounds: the directory is at most 64 MiB (QEMU's limit, checked before reading it); a bitmap
 * table covers at most 512 MiB of bitmap (so at most 2^20 entries) and is read one cluster at a
 * time; over all bitmaps at most {@link MAX_CHECK_BITMAP_ENTRIES} table entries are examined, so
 * 65535 bitmaps sharing one huge table cannot make the check run for hours.
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { AUTOCLEAR_BITMAPS, EXT_BITMAPS } from './constants.js';
import type { Qcow2Header } from './header.js';

/** QEMU's QCOW2_MAX_BITMAPS. */
export const MAX_BITMAPS = 65535;
/** QEMU's QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1 KiB per bitmap). */
export const MAX_BITMAP_DIRECTORY_SIZE = 1024 * MAX_BITMAPS;
const BME_MAX_TABLE_SIZE = 0x8000000;
/** Work limit: bitmap table entries examined over all bitmaps (UNSUPPORTED past it). */
export const MAX_CHECK_BITMAP_ENTRIES = 2 ** 27;
const BME_MAX_PHYS_SIZE = 0x20000000;
const BME_MAX_GRANULARITY_BITS = 31;
const BME_MIN_GRANULARITY_BITS = 9;
const BME_MAX_NAME_SIZE = 1023;
const BME_FLAG_IN_USE = 1;
const BME_RESERVED_FLAGS = 0xfffffffc;
const BT_DIRTY_TRACKING_BITMAP = 1;
const DIR_ENTRY_HEADER = 24;
const TWO_32 = 4294967296;

/** The bitmaps header extension (after QEMU's validation at open). */
export interface BitmapsExtension {
  readonly nbBitmaps: number;
  readonly directorySize: number;
  readonly directoryOffset: number;
}

/** One bitmap directory entry (the fields the check needs). */
export interface BitmapDirectoryEntry {
  readonly name: string;
  readonly tableOffset: number;
  readonly tableSize: number;
  readonly flags: number;
  readonly granularityBits: number;
}

/** What the walk reports references to and corruptions with. */
export interface BitmapCheckHost {
  readonly file: BlockFile;
  readonly clusterSize: number;
  /** qcow2_inc_refcounts_imrt. */
  inc(offset: number, size: number): void;
  /** One more corruption. */
  corruption(): void;
}

function openFailed(message: string): BlockError {
  return new BlockError('CORRUPT_IMAGE', `bitmaps_ext: ${message}`, { op: 'check' });
}

function checkFailed(message: string): BlockError {
  return new BlockError('CORRUPT_IMAGE', `check failed: ${message}`, { op: 'check' });
}

/**
 * The bitmaps extension as QEMU's open reads it: undefined when absent or ignored (autoclear bit
 * clear); CORRUPT_IMAGE where QEMU refuses to open the image.
 */
export function bitmapsExtension(header: Qcow2Header): BitmapsExtension | undefined {
  const ext = header.extensions.find((e) => e.type === EXT_BITMAPS);
  if (ext === undefined) return undefined;
  if (ext.data.length !== 24) throw openFailed('Invalid extension length');
  if ((header.autoclearFeatures & AUTOCLEAR_BITMAPS) === 0n) return undefined;
  const view = new DataView(ext.data.buffer, ext.data.byteOffset, ext.data.byteLength);
  const nbBitmaps = view.getUint32(0);
  if (view.getUint32(4) !== 0) throw openFailed('Reserved field is not zero');
  const directorySize = view.getBigUint64(8);
  const directoryOffset = view.getBigUint64(16);
  const cs = 2 ** header.clusterBits;
  if (nbBitmaps > MAX_BITMAPS) throw openFailed(`Image has ${nbBitmaps} bitmaps, exceeding the QEMU supported maximum of ${MAX_BITMAPS}`);
  if (nbBitmaps === 0) throw openFailed('found bitmaps extension with zero bitmaps');
  if (directoryOffset % BigInt(cs) !== 0n) throw openFailed('invalid bitmap directory offset');
  if (directorySize > BigInt(MAX_BITMAP_DIRECTORY_SIZE)) {
    throw openFailed(`bitmap directory size (${directorySize}) exceeds the maximum supported size (${MAX_BITMAP_DIRECTORY_SIZE})`);
  }
  if (directoryOffset > BigInt(Number.MAX_SAFE_INTEGER)) throw openFailed('invalid bitmap directory offset');
  return { nbBitmaps, directorySize: Number(directorySize), directoryOffset: Number(directoryOffset) };
}

async function readAt(file: BlockFile, offset: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  if (length > 0 && offset < file.length) await file.read(offset, bytes);
  return bytes;
}

/**
 * bitmap_list_load: parses the directory; a string saying why it is broken, or the entries.
 * `fileLength` is the image file's size (check_dir_entry compares the bitmap's coverage with it).
 */
export function parseBitmapDirectory(dir: Uint8Array, ext: BitmapsExtension, clusterSize: number, fileLength: number): BitmapDirectoryEntry[] | string {
  if (dir.length === 0) return 'Requested bitmap directory size is zero';
  const view = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const entries: BitmapDirectoryEntry[] = [];
  let at = 0;
  while (at < dir.length) {
    if (at + DIR_ENTRY_HEADER > dir.length) return 'Broken bitmap directory';
    if (entries.length + 1 > ext.nbBitmaps) return 'More bitmaps found than specified in header extension';
    const tableOffset = view.getBigUint64(at);
    const tableSize = view.getUint32(at + 8);
    const flags = view.getUint32(at + 12);
    const type = view.getUint8(at + 16);
    const granularityBits = view.getUint8(at + 17);
    const nameSize = view.getUint16(at + 18);
    const extraDataSize = view.getUint32(at + 20);
    const next = at + Math.ceil((DIR_ENTRY_HEADER + extraDataSize + nameSize) / 8) * 8;
    if (next > dir.length) return 'Broken bitmap directory';
    if (extraDataSize !== 0) return 'Bitmap extra data is not supported';
    const name = new TextDecoder('utf-8', { fatal: false }).decode(dir.subarray(at + DIR_ENTRY_HEADER, at + DIR_ENTRY_HEADER + nameSize));
    // check_dir_entry.
    const physBytes = tableSize * clusterSize;
    const bad =
      tableSize === 0 ||
      tableOffset === 0n ||
      tableOffset % BigInt(clusterSize) !== 0n ||
      tableOffset > BigInt(Number.MAX_SAFE_INTEGER) ||
      tableSize > BME_MAX_TABLE_SIZE ||
      granularityBits > BME_MAX_GRANULARITY_BITS ||
      granularityBits < BME_MIN_GRANULARITY_BITS ||
      (flags & BME_RESERVED_FLAGS) !== 0 ||
      nameSize > BME_MAX_NAME_SIZE ||
      type !== BT_DIRTY_TRACKING_BITMAP ||
      physBytes > BME_MAX_PHYS_SIZE ||
      ((flags & BME_FLAG_IN_USE) === 0 && fileLength > physBytes * 8 * 2 ** granularityBits);
    if (bad) return `Bitmap '${name}' doesn't satisfy the constraints`;
    entries.push({ name, tableOffset: Number(tableOffset), tableSize, flags, granularityBits });
    at = next;
  }
  if (entries.length !== ext.nbBitmaps) return 'Less bitmaps found than specified in header extension';
  return entries;
}

/** check_table_entry: whether a bitmap table entry is valid. */
function validTableEntry(hi: number, lo: number, clusterSize: number): boolean {
  // BME_TABLE_ENTRY_RESERVED_MASK 0xff000000000001fe.
  if ((hi & 0xff000000) !== 0 || (lo & 0x1fe) !== 0) return false;
  const offset = (hi & 0x00ffffff) * TWO_32 + ((lo & 0xfffffe00) >>> 0);
  if (offset !== 0) {
    // With an offset, bit 0 ("all ones") is reserved.
    if ((lo & 1) !== 0) return false;
    if (offset % clusterSize !== 0) return false;
  }
  return true;
}

/**
 * qcow2_check_bitmaps_refcounts: counts the directory, the tables and the data clusters of every
 * bitmap. Throws CORRUPT_IMAGE "check failed" (after counting one corruption) where QEMU's check
 * fails on a broken directory or table.
 */
export async function checkBitmapRefcounts(host: BitmapCheckHost, ext: BitmapsExtension): Promise<void> {
  const cs = host.clusterSize;
  host.inc(ext.directoryOffset, ext.directorySize);
  const dir = await readAt(host.file, ext.directoryOffset, ext.directorySize);
  const entries = parseBitmapDirectory(dir, ext, cs, host.file.length);
  if (typeof entries === 'string') {
    host.corruption();
    throw checkFailed(`bitmap directory: ${entries}`);
  }
  let examined = 0;
  for (const bm of entries) {
    examined += bm.tableSize;
    if (examined > MAX_CHECK_BITMAP_ENTRIES) {
      throw new BlockError('UNSUPPORTED', `check stopped: more than ${MAX_CHECK_BITMAP_ENTRIES} bitmap table entries to examine`, { op: 'check' });
    }
    host.inc(bm.tableOffset, bm.tableSize * 8);
    // bitmap_table_load validates every entry before any is counted.
    const offsets: number[] = [];
    const perCluster = cs / 8;
    for (let first = 0; first < bm.tableSize; first += perCluster) {
      const n = Math.min(perCluster, bm.tableSize - first);
      const table = await readAt(host.file, bm.tableOffset + first * 8, n * 8);
      const view = new DataView(table.buffer);
      for (let i = 0; i < n; i++) {
        const hi = view.getUint32(i * 8);
        const lo = view.getUint32(i * 8 + 4);
        if (!validTableEntry(hi, lo, cs)) {
          host.corruption();
          throw checkFailed(`bitmap '${bm.name}': bitmap table entry ${first + i} is invalid`);
        }
        const offset = (hi & 0x00ffffff) * TWO_32 + ((lo & 0xfffffe00) >>> 0);
        if (offset !== 0) offsets.push(offset);
      }
    }
    for (const offset of offsets) host.inc(offset, cs);
  }
}
