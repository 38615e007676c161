/**
 * qcow2 consistency check and repair, with the semantics, counters and messages of
 * `qemu-img check [-r leaks|all]` (QEMU block/qcow2-refcount.c, qcow2_check_refcounts).
 *
 * The check rebuilds the refcounts in memory from every reference the metadata makes (header,
 * active L1 and its L2 tables and clusters, every snapshot's L1 tree, the snapshot table, the
 * refcount table and blocks) and compares them with the refcounts on disk:
 *   - refcount on disk below the references: a corruption (the cluster may be freed while used);
 *   - above: a leak (space lost, harmless);
 *   - OFLAG_COPIED that disagrees with "refcount is exactly 1" on an active L1/L2 entry: a corruption;
 *   - unaligned or reserved-bit entries, references past the end of the file, refcount blocks
 *     outside the image or not counted exactly once: corruptions.
 * Repair ('leaks' fixes leaks; 'all' also corruptions) lowers or raises refcounts in place and,
 * where a referenced cluster has refcount 0 or a refcount block is broken, rebuilds the whole
 * refcount structure from the in-memory counts (QEMU's rebuild_refcount_structure).
 *
 * Snapshot table: read as qemu-img check reads it (check-snapshot-table.ts): more than 65536
 * entries, over 1 KiB of extra data or a table over 64 MiB fail the check, and `-r all` drops
 * what QEMU drops; a v3 entry with less than 16 bytes of extra data is a corruption that repair
 * fixes by rewriting the table (QEMU's "snapshot table entry N is incomplete").
 *
 * Persistent bitmaps (check-bitmaps.ts): while autoclear bit 0 is set, the bitmap directory,
 * tables and data clusters are references; a broken directory or table fails the check, as in
 * QEMU.
 *
 * It works on a {@link BlockFile}, not on an open image, as `qemu-img check` does: it must read
 * images that the driver refuses to open, and repair writes the file directly. The file must not
 * be open through a driver at the same time.
 *
 * Bounds: the in-memory refcount array has one 32-bit entry per host cluster and is limited to
 * 2^24 clusters (64 MiB; 1 TiB of file at 64 KiB clusters); tables are read one cluster at a time.
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY, INCOMPAT_EXTL2, MAX_L1_BYTES, MAX_REFCOUNT_TABLE_BYTES } from './constants.js';
import { parseQcow2Header, peekClusterBits, type Qcow2Header } from './header.js';
import { getRefcountEntry, maxRefcount, refcountEntriesPerBlock, setRefcountEntry } from './refcount-block.js';
import { bitmapsExtension, checkBitmapRefcounts, type BitmapsExtension } from './check-bitmaps.js';
import { readSnapshotTableForCheck, type CheckedSnapshotTable } from './check-snapshot-table.js';
import { serializeSnapshotTable, type Qcow2Snapshot } from './snapshot-table.js';

/** What a check may repair (`qemu-img check -r leaks|all`). */
export type Qcow2RepairMode = 'leaks' | 'all';

/**
 * The result, with `qemu-img check --output=json` field names. Every counter is present here;
 * {@link qemuImgCheckJson} drops the zero ones as qemu-img does.
 */
export interface Qcow2CheckResult {
  filename?: string;
  format: 'qcow2';
  'check-errors': number;
  corruptions: number;
  leaks: number;
  'corruptions-fixed': number;
  'leaks-fixed': number;
  'image-end-offset': number;
  'total-clusters': number;
  'allocated-clusters': number;
  'fragmented-clusters': number;
  'compressed-clusters': number;
  /** What was found, one line each, in qemu-img's wording (it prints them on stderr). */
  messages: string[];
}

/** Options of {@link checkQcow2}. */
export interface Qcow2CheckOptions {
  readonly repair?: Qcow2RepairMode;
  /** Reported as `filename`. */
  readonly filename?: string;
}

/** In-memory refcount array limit (entries): 2^24 * 4 bytes = 64 MiB. */
export const MAX_CHECK_CLUSTERS = 2 ** 24;
/**
 * Work limit: L2 entries examined over all trees (active and snapshots). 2^31 covers eight full
 * trees of a 16 TiB disk at 64 KiB clusters; a hostile image whose many L1 entries or snapshots
 * all point at the same tables cannot make the check run for hours.
 */
export const MAX_CHECK_L2_ENTRIES = 2 ** 31;
/** Work limit: L1 entries read over all trees (1 GiB of L1 tables), for images with many snapshots. */
export const MAX_CHECK_L1_ENTRIES = 2 ** 27;

const FIX_LEAKS = 1;
const FIX_ERRORS = 2;
const TWO_32 = 4294967296;

const hex = (n: number): string => n.toString(16);
/** A 64-bit entry given as halves, in %" PRIx64 " form. */
const hex64 = (hi: number, lo: number): string => (hi === 0 ? hex(lo >>> 0) : `${hex(hi >>> 0)}${hex(lo >>> 0).padStart(8, '0')}`);

/** A growable array of computed refcounts (QEMU's "in-memory refcount table", imrt). */
class RefcountArray {
  #data: Uint32Array;
  length: number;
  constructor(length: number) {
    this.length = length;
    this.#data = new Uint32Array(Math.max(16, length));
  }
  get(i: number): number {
    return i < this.length ? this.#data[i]! : 0;
  }
  set(i: number, value: number): void {
    this.grow(i + 1);
    this.#data[i] = value;
  }
  grow(length: number): void {
    if (length <= this.length) return;
    if (length > MAX_CHECK_CLUSTERS) {
      throw new BlockError('UNSUPPORTED', `check needs more than ${MAX_CHECK_CLUSTERS} clusters of refcounts in memory`, { op: 'check' });
    }
    if (length > this.#data.length) {
      const next = new Uint32Array(Math.min(MAX_CHECK_CLUSTERS, Math.max(length, this.#data.length * 2)));
      next.set(this.#data);
      this.#data = next;
    }
    this.length = length;
  }
  clear(): void {
    this.#data.fill(0);
  }
}

interface Counters {
  checkErrors: number;
  corruptions: number;
  leaks: number;
  corruptionsFixed: number;
  leaksFixed: number;
  allocated: number;
  fragmented: number;
  compressed: number;
}

const zeroCounters = (): Counters => ({
  checkErrors: 0,
  corruptions: 0,
  leaks: 0,
  corruptionsFixed: 0,
  leaksFixed: 0,
  allocated: 0,
  fragmented: 0,
  compressed: 0,
});

/** One pass of qcow2_check_refcounts over the file. */
class Checker {
  readonly file: BlockFile;
  readonly header: Qcow2Header;
  readonly cs: number;
  readonly clusterBits: number;
  readonly order: number;
  readonly epb: number;
  readonly maxRefcount: number;
  readonly extendedL2: boolean;
  readonly l2EntryBytes: number;
  readonly messages: string[];
  reftable: Uint8Array;
  reftableView: DataView;
  /** Refcount blocks read from disk (and modified by repairs), by offset. */
  readonly blocks = new Map<number, { bytes: Uint8Array; view: DataView; dirty: boolean }>();
  res: Counters = zeroCounters();
  imrt: RefcountArray;
  nbClusters: number;
  rebuild = false;
  l2EntriesSeen = 0;
  l1EntriesSeen = 0;
  /** The snapshot table as the check read it (set before {@link run}). */
  snapshotTable: CheckedSnapshotTable = { snapshots: [], size: 0, corruptions: 0, corruptionsFixed: 0 };
  /** The bitmaps extension, when in use. */
  bitmaps: BitmapsExtension | undefined;

  constructor(file: BlockFile, header: Qcow2Header, reftable: Uint8Array, messages: string[]) {
    this.file = file;
    this.header = header;
    this.clusterBits = header.clusterBits;
    this.cs = 2 ** header.clusterBits;
    this.order = header.version === 2 ? 4 : header.refcountOrder;
    this.epb = refcountEntriesPerBlock(this.clusterBits, this.order);
    this.maxRefcount = maxRefcount(this.order);
    this.extendedL2 = (header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
    this.l2EntryBytes = this.extendedL2 ? 16 : 8;
    this.messages = messages;
    this.reftable = reftable;
    this.reftableView = new DataView(reftable.buffer, reftable.byteOffset, reftable.byteLength);
    this.nbClusters = Math.ceil(file.length / this.cs);
    if (this.nbClusters > MAX_CHECK_CLUSTERS) {
      throw new BlockError('UNSUPPORTED', `image file too large to check (${this.nbClusters} clusters)`, { op: 'check' });
    }
    this.imrt = new RefcountArray(this.nbClusters);
  }

  log(message: string): void {
    if (this.messages.length < 10000) this.messages.push(message);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(length);
    if (offset < this.file.length) await this.file.read(offset, bytes);
    return bytes;
  }

  // ---- in-memory refcounts ------------------------------------------------------------------

  /** qcow2_inc_refcounts_imrt. */
  inc(offset: number, size: number): void {
    if (size <= 0) return;
    // "Last cluster of qcow2 image may be semi-allocated, so it may be OK to reference some space
    // after file end but it should be less than one cluster."
    if (offset + size - this.file.length >= this.cs) {
      this.log(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`);
      this.res.corruptions++;
      return;
    }
    const first = Math.floor(offset / this.cs);
    const last = Math.floor((offset + size - 1) / this.cs);
    for (let k = first; k <= last; k++) {
      const value = this.imrt.get(k);
      if (value >= this.maxRefcount) {
        this.log(`ERROR: overflow cluster offset=0x${hex(k * this.cs)}`);
        this.res.corruptions++;
        continue;
      }
      this.imrt.set(k, value + 1);
    }
  }

  // ---- on-disk refcounts --------------------------------------------------------------------

  get reftableEntries(): number {
    return this.reftable.length / 8;
  }

  reftableEntry(i: number): { hi: number; lo: number } {
    return { hi: this.reftableView.getUint32(i * 8), lo: this.reftableView.getUint32(i * 8 + 4) };
  }

  /** The refcount block holding cluster `i`: null when unallocated, 'error' when its entry is bad. */
  async blockFor(i: number): Promise<{ bytes: Uint8Array; view: DataView; dirty: boolean } | null | 'error'> {
    const index = Math.floor(i / this.epb);
    if (index >= this.reftableEntries) return null;
    const { hi, lo } = this.reftableEntry(index);
    if (hi >= 1 << 21) return 'error';
    const offset = hi * TWO_32 + ((lo & 0xfffffe00) >>> 0);
    if (offset === 0) return null;
    if (offset % this.cs !== 0) return 'error';
    let block = this.blocks.get(offset);
    if (block === undefined) {
      const bytes = await this.read(offset, this.cs);
      block = { bytes, view: new DataView(bytes.buffer), dirty: false };
      this.blocks.set(offset, block);
    }
    return block;
  }

  async diskRefcount(i: number): Promise<number> {
    const block = await this.blockFor(i);
    if (block === null) return 0;
    if (block === 'error') return -1;
    return getRefcountEntry(block.bytes, block.view, i % this.epb, this.order);
  }

  async writeDirtyBlocks(): Promise<void> {
    for (const [offset, block] of this.blocks) {
      if (!block.dirty) continue;
      await this.file.write(offset, block.bytes);
      block.dirty = false;
    }
  }

  // ---- calculate_refcounts --------------------------------------------------------------------

  async checkL2(l2Offset: number, frag: boolean, fix: number): Promise<void> {
    const cs = this.cs;
    this.l2EntriesSeen += cs / this.l2EntryBytes;
    if (this.l2EntriesSeen > MAX_CHECK_L2_ENTRIES) {
      throw new BlockError('UNSUPPORTED', `check stopped: more than ${MAX_CHECK_L2_ENTRIES} L2 entries to examine`, { op: 'check' });
    }
    const table = await this.read(l2Offset, cs);
    const view = new DataView(table.buffer);
    const n = cs / this.l2EntryBytes;
    let nextContiguous = 0;
    let dirty = false;
    const x = 62 - (this.clusterBits - 8); // compressed descriptor split
    for (let i = 0; i < n; i++) {
      const p = i * this.l2EntryBytes;
      const hi = view.getUint32(p);
      const lo = view.getUint32(p + 4);
      const bitmapZero = this.extendedL2 ? view.getUint32(p + 8) : 0;
      const bitmapAlloc = this.extendedL2 ? view.getUint32(p + 12) : 0;
      const raw = `${hex64(hi, lo)}`;
      if ((hi & 0x40000000) !== 0) {
        if ((hi & 0x80000000) !== 0) {
          this.log(`ERROR: coffset=0x${hex(offsetOfCompressed(hi & 0x7fffffff, lo, x))}: copied flag must never be set for compressed clusters`);
          this.res.corruptions++;
        }
        const coffset = offsetOfCompressed(hi & 0x3fffffff, lo, x);
        const sectors = Math.floor((hi & 0x3fffffff) / 2 ** (x - 32)) + 1;
        this.inc(coffset - (coffset % 512), sectors * 512);
        if (frag) {
          this.res.allocated++;
          this.res.compressed++;
          this.res.fragmented++; // compressed clusters are fragmented by nature
        }
        continue;
      }
      if ((hi & 0x3f000000) !== 0 || (lo & 0x1fe) !== 0) {
        this.log(`ERROR found l2 entry with reserved bits set: ${raw}`);
        this.res.corruptions++;
      }
      const offset = (hi & 0x00ffffff) * TWO_32 + ((lo & 0xfffffe00) >>> 0);
      const zero = (lo & 1) !== 0 && !this.extendedL2;
      if (offset === 0) {
        if (this.extendedL2 && bitmapAlloc !== 0) {
          this.log('ERROR: Unallocated cluster has non-zero subcluster allocation bitmap');
          this.res.corruptions++;
        }
        continue; // unallocated or zero-plain
      }
      // normal or zero-alloc
      if ((bitmapZero & bitmapAlloc) !== 0) {
        this.log(`ERROR offset=${hex(offset)}: Allocated cluster has corrupted subcluster allocation bitmap`);
        this.res.corruptions++;
      }
      if (offset % cs !== 0) {
        this.res.corruptions++;
        const containsData = this.extendedL2 ? bitmapAlloc !== 0 : !zero;
        if (!containsData) {
          const repair = (fix & FIX_ERRORS) !== 0;
          this.log(`${repair ? 'Repairing' : 'ERROR'} offset=${hex(offset)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`);
          if (repair) {
            // A preallocated zero cluster at a bad offset becomes a plain zero cluster.
            view.setUint32(p, 0);
            view.setUint32(p + 4, 1);
            dirty = true;
            this.res.corruptions--;
            this.res.corruptionsFixed++;
            continue;
          }
        } else {
          this.log(`ERROR offset=${hex(offset)}: Data cluster is not properly aligned; L2 entry corrupted.`);
        }
      }
      if (frag) {
        this.res.allocated++;
        if (nextContiguous !== 0 && offset !== nextContiguous) this.res.fragmented++;
        nextContiguous = offset + cs;
      }
      this.inc(offset, cs);
    }
    if (dirty) await this.file.write(l2Offset, table);
  }

  async checkL1(l1Offset: number, l1Size: number, frag: boolean, fix: number): Promise<void> {
    this.inc(l1Offset, l1Size * 8);
    // Entries past the end of the file read as zero: read and visit only what the file holds.
    const present = Math.max(0, Math.min(l1Size, Math.floor((this.file.length - l1Offset) / 8)));
    if (present === 0) return;
    this.l1EntriesSeen += present;
    if (this.l1EntriesSeen > MAX_CHECK_L1_ENTRIES) {
      throw new BlockError('UNSUPPORTED', `check stopped: more than ${MAX_CHECK_L1_ENTRIES} L1 entries to examine`, { op: 'check' });
    }
    const l1 = await this.read(l1Offset, present * 8);
    const view = new DataView(l1.buffer);
    for (let i = 0; i < present; i++) {
      const hi = view.getUint32(i * 8);
      const lo = view.getUint32(i * 8 + 4);
      if (hi === 0 && lo === 0) continue;
      if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) {
        this.log(`ERROR found L1 entry with reserved bits set: ${hex64(hi, lo)}`);
        this.res.corruptions++;
      }
      const l2Offset = (hi & 0x00ffffff) * TWO_32 + ((lo & 0xfffffe00) >>> 0);
      this.inc(l2Offset, this.cs);
      if (l2Offset % this.cs !== 0) {
        this.log(`ERROR l2_offset=${hex(l2Offset)}: Table is not cluster aligned; L1 entry corrupted`);
        this.res.corruptions++;
      }
      await this.checkL2(l2Offset, frag, fix);
    }
  }

  async checkRefblocks(fix: number): Promise<void> {
    for (let i = 0; i < this.reftableEntries; i++) {
      const { hi, lo } = this.reftableEntry(i);
      if ((lo & 0x1ff) !== 0) {
        this.log(`ERROR refcount table entry ${i} has reserved bits set`);
        this.res.corruptions++;
        this.rebuild = true;
        continue;
      }
      const offset = hi * TWO_32 + lo;
      const cluster = Math.floor(offset / this.cs);
      if (offset % this.cs !== 0) {
        this.log(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`);
        this.res.corruptions++;
        this.rebuild = true;
        continue;
      }
      if (cluster >= this.nbClusters) {
        this.res.corruptions++;
        const repair = (fix & FIX_ERRORS) !== 0 && offset + this.cs <= 2 ** 52;
        this.log(`${repair ? 'Repairing' : 'ERROR'} refcount block ${i} is outside image`);
        if (repair && cluster < MAX_CHECK_CLUSTERS) {
          // Grow the file so that the block exists (it then reads as zeroes).
          await this.file.truncate(offset + this.cs);
          this.nbClusters = Math.ceil(this.file.length / this.cs);
          this.imrt.grow(this.nbClusters);
          this.res.corruptions--;
          this.res.corruptionsFixed++;
          this.inc(offset, this.cs);
        } else if (repair) {
          this.rebuild = true;
        }
        continue;
      }
      if (offset !== 0) {
        this.inc(offset, this.cs);
        if (this.imrt.get(cluster) !== 1) {
          this.log(`ERROR refcount block ${i} refcount=${this.imrt.get(cluster)}`);
          this.res.corruptions++;
          this.rebuild = true;
        }
      }
    }
  }

  async calculate(fix: number): Promise<void> {
    const h = this.header;
    this.inc(0, this.cs);
    await this.checkL1(h.l1TableOffset, h.l1Size, true, fix);
    for (const sn of this.snapshotTable.snapshots) {
      if (sn.l1TableOffset % this.cs !== 0) {
        this.log(`ERROR snapshot ${sn.id} (${sn.name}) l1_offset=0x${hex(sn.l1TableOffset)}: L1 table is not cluster aligned; snapshot table entry corrupted`);
        this.res.corruptions++;
        continue;
      }
      if (sn.l1Size * 8 > MAX_L1_BYTES) {
        this.log(`ERROR snapshot ${sn.id} (${sn.name}) l1_size=0x${hex(sn.l1Size)}: L1 table is too large; snapshot table entry corrupted`);
        this.res.corruptions++;
        continue;
      }
      await this.checkL1(sn.l1TableOffset, sn.l1Size, false, fix);
    }
    this.inc(h.snapshotsOffset, this.snapshotTable.size);
    this.inc(h.refcountTableOffset, this.reftable.length);
    if (this.bitmaps !== undefined) {
      await checkBitmapRefcounts(
        {
          file: this.file,
          clusterSize: this.cs,
          inc: (offset, size) => this.inc(offset, size),
          corruption: () => void this.res.corruptions++,
        },
        this.bitmaps,
      );
    }
    await this.checkRefblocks(fix);
  }

  /** compare_refcounts; returns the highest cluster in use. */
  async compare(fix: number): Promise<number> {
    let highest = 0;
    const n = this.imrt.length;
    for (let start = 0; start < n; start += this.epb) {
      // One refcount block at a time: its entries are compared without further I/O.
      const block = await this.blockFor(start);
      const end = Math.min(n, start + this.epb);
      for (let i = start; i < end; i++) {
        if (block === 'error') {
          this.log(`Can't get refcount for cluster ${i}: Input/output error`);
          this.res.checkErrors++;
          continue;
        }
        const r1 = block === null ? 0 : getRefcountEntry(block.bytes, block.view, i - start, this.order);
        const r2 = this.imrt.get(i);
        if (r1 > 0 || r2 > 0) highest = i;
        if (r1 === r2) continue;
        let fixed: 'leaks' | 'corruptions' | undefined;
        if (r1 === 0) this.rebuild = true;
        else if (r1 > r2 && (fix & FIX_LEAKS) !== 0) fixed = 'leaks';
        else if (r1 < r2 && (fix & FIX_ERRORS) !== 0) fixed = 'corruptions';
        this.log(`${fixed !== undefined ? 'Repairing' : r1 < r2 ? 'ERROR' : 'Leaked'} cluster ${i} refcount=${r1} reference=${r2}`);
        if (fixed !== undefined && block !== null) {
          setRefcountEntry(block.bytes, block.view, i - start, this.order, Math.min(r2, this.maxRefcount));
          block.dirty = true;
          if (fixed === 'leaks') this.res.leaksFixed++;
          else this.res.corruptionsFixed++;
          continue;
        }
        if (r1 < r2) this.res.corruptions++;
        else this.res.leaks++;
      }
    }
    await this.writeDirtyBlocks();
    return highest;
  }

  /** check_oflag_copied over the active L1 table. */
  async checkOflagCopied(fix: number): Promise<void> {
    const h = this.header;
    const present = Math.max(0, Math.min(h.l1Size, Math.floor((this.file.length - h.l1TableOffset) / 8)));
    if (present === 0) return;
    const l1 = await this.read(h.l1TableOffset, present * 8);
    const l1View = new DataView(l1.buffer);
    // As QEMU: always with -r all; with -r leaks only when nothing else is wrong any more (this
    // runs after the refcount repairs, so the refcounts it compares with are then accurate).
    const repair =
      (fix & FIX_ERRORS) !== 0 ||
      ((fix & FIX_LEAKS) !== 0 && this.res.checkErrors === 0 && this.res.corruptions === 0 && this.res.leaks === 0);
    for (let i = 0; i < present; i++) {
      const hi = l1View.getUint32(i * 8);
      const lo = l1View.getUint32(i * 8 + 4);
      const l2Offset = (hi & 0x00ffffff) * TWO_32 + ((lo & 0xfffffe00) >>> 0);
      if (l2Offset === 0) continue;
      const refcount = await this.diskRefcount(Math.floor(l2Offset / this.cs));
      if (refcount >= 0 && (refcount === 1) !== ((hi & 0x80000000) !== 0)) {
        this.res.corruptions++;
        this.log(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${hex64(hi, lo)} refcount=${refcount}`);
        if (repair) {
          const entry = new Uint8Array(8);
          const v = new DataView(entry.buffer);
          v.setUint32(0, refcount === 1 ? (hi | 0x80000000) >>> 0 : hi & 0x7fffffff);
          v.setUint32(4, lo);
          await this.file.write(h.l1TableOffset + i * 8, entry);
          this.res.corruptions--;
          this.res.corruptionsFixed++;
        }
      }
      const table = await this.read(l2Offset, this.cs);
      const view = new DataView(table.buffer);
      let dirty = 0;
      for (let j = 0; j < this.cs / this.l2EntryBytes; j++) {
        const p = j * this.l2EntryBytes;
        const ehi = view.getUint32(p);
        const elo = view.getUint32(p + 4);
        if ((ehi & 0x40000000) !== 0) continue; // compressed
        const dataOffset = (ehi & 0x00ffffff) * TWO_32 + ((elo & 0xfffffe00) >>> 0);
        if (dataOffset === 0) continue; // unallocated or zero-plain
        const rc = await this.diskRefcount(Math.floor(dataOffset / this.cs));
        if (rc < 0) continue;
        if ((rc === 1) !== ((ehi & 0x80000000) !== 0)) {
          this.res.corruptions++;
          this.log(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${hex64(ehi, elo)} refcount=${rc}`);
          if (repair) {
            view.setUint32(p, rc === 1 ? (ehi | 0x80000000) >>> 0 : ehi & 0x7fffffff);
            dirty++;
          }
        }
      }
      if (dirty > 0) {
        await this.file.write(l2Offset, table);
        this.res.corruptions -= dirty;
        this.res.corruptionsFixed += dirty;
      }
    }
  }

  // ---- rebuild_refcount_structure -----------------------------------------------------------

  /** alloc_clusters_imrt: `count` contiguous clusters free in the computed refcounts. */
  allocImrt(count: number, firstFree: { value: number }): number {
    let cluster = firstFree.value;
    let contiguous = 0;
    let firstGap = true;
    for (; cluster < this.imrt.length && contiguous < count; cluster++) {
      if (this.imrt.get(cluster) === 0) {
        contiguous++;
        if (firstGap) {
          firstFree.value = cluster;
          firstGap = false;
        }
      } else {
        contiguous = 0;
      }
    }
    if (contiguous < count) this.imrt.grow(cluster + count - contiguous);
    cluster -= contiguous;
    for (let i = 0; i < count; i++) this.imrt.set(cluster + i, 1);
    return cluster * this.cs;
  }

  /** rebuild_refcounts_write_refblocks; returns whether the new reftable grew. */
  async writeRefblocks(first: number, endCluster: number, reftable: { entries: number[] }): Promise<boolean> {
    let grown = false;
    const firstFree = { value: 0 };
    let end = endCluster;
    for (let cluster = first; cluster < end; cluster++) {
      if (this.imrt.get(cluster) === 0) continue;
      const index = Math.floor(cluster / this.epb);
      const start = index * this.epb;
      let offset = reftable.entries[index] ?? 0;
      if (offset === 0) {
        if (firstFree.value < start) firstFree.value = start;
        offset = this.allocImrt(1, firstFree);
        const blockCluster = offset / this.cs;
        if (blockCluster >= end) end = blockCluster + 1;
        if (reftable.entries.length <= index) {
          const entries = Math.ceil(((index + 1) * 8) / this.cs) * (this.cs / 8);
          while (reftable.entries.length < entries) reftable.entries.push(0);
          grown = true;
        }
        reftable.entries[index] = offset;
      }
      const block = new Uint8Array(this.cs);
      const view = new DataView(block.buffer);
      for (let k = 0; k < this.epb; k++) {
        const v = this.imrt.get(start + k);
        if (v !== 0) setRefcountEntry(block, view, k, this.order, Math.min(v, this.maxRefcount));
      }
      await this.file.write(offset, block);
      cluster = start + this.epb - 1;
    }
    return grown;
  }

  async rebuildRefcountStructure(): Promise<void> {
    this.log('Rebuilding refcount structure');
    this.blocks.clear();
    const reftable = { entries: [] as number[] };
    let changed = await this.writeRefblocks(0, this.imrt.length, reftable);
    let reftableOffset = -1;
    let reftableClusters = 0;
    for (let round = 0; round === 0 || changed; round++) {
      if (round > 64) throw new BlockError('IO', 'refcount rebuild does not converge', { op: 'check' });
      reftableClusters = Math.ceil((reftable.entries.length * 8) / this.cs);
      if (reftableClusters * this.cs > MAX_REFCOUNT_TABLE_BYTES) {
        throw new BlockError('NO_SPACE', 'rebuilt refcount table would exceed 8 MiB', { op: 'check' });
      }
      const ff = { value: 0 };
      reftableOffset = this.allocImrt(reftableClusters, ff);
      const startCluster = reftableOffset / this.cs;
      changed = await this.writeRefblocks(startCluster, startCluster + reftableClusters, reftable);
    }
    const table = new Uint8Array(reftableClusters * this.cs);
    const view = new DataView(table.buffer);
    reftable.entries.forEach((offset, i) => {
      view.setUint32(i * 8, Math.floor(offset / TWO_32));
      view.setUint32(i * 8 + 4, offset % TWO_32);
    });
    await this.file.write(reftableOffset, table);
    await this.file.flush();
    // Enter the new reftable into the header (refcount_table_offset, refcount_table_clusters).
    const fields = new Uint8Array(12);
    const fv = new DataView(fields.buffer);
    fv.setUint32(0, Math.floor(reftableOffset / TWO_32));
    fv.setUint32(4, reftableOffset % TWO_32);
    fv.setUint32(8, reftableClusters);
    await this.file.write(48, fields);
    await this.file.flush();
    this.header.refcountTableOffset = reftableOffset;
    this.header.refcountTableClusters = reftableClusters;
    this.reftable = table;
    this.reftableView = view;
    this.nbClusters = Math.max(this.nbClusters, Math.ceil(this.file.length / this.cs));
  }

  /**
   * qcow2_write_snapshots for a repair: the table is written complete to newly allocated clusters
   * (the first free run by the on-disk refcounts), the header is switched to it, then the old
   * table's clusters are released.
   */
  async rewriteSnapshotTable(snapshots: Qcow2Snapshot[]): Promise<void> {
    const h = this.header;
    const cs = this.cs;
    const oldSize = this.snapshotTable.size;
    const bytes = serializeSnapshotTable(snapshots);
    const count = Math.ceil(bytes.length / cs);
    let start = 1;
    let run = 0;
    for (let c = 1; run < count; c++) {
      if (c >= MAX_CHECK_CLUSTERS) throw new BlockError('NO_SPACE', 'no room for the snapshot table', { op: 'check' });
      const block = await this.blockFor(c);
      if (block === 'error') throw new BlockError('CORRUPT_IMAGE', 'refcount structure unreadable', { op: 'check' });
      const refcount = block === null ? 0 : getRefcountEntry(block.bytes, block.view, c % this.epb, this.order);
      // The old table's clusters stay in use until the header points at the new one (a hostile
      // table may span clusters past the end of the file that have no refcount).
      const inOldTable = oldSize > 0 && c * cs < h.snapshotsOffset + oldSize && (c + 1) * cs > h.snapshotsOffset;
      if (refcount !== 0 || block === null || inOldTable) {
        // A cluster without a refcount block cannot be allocated here; skip past it.
        run = 0;
        start = c + 1;
        continue;
      }
      run++;
    }
    const setRefcount = async (c: number, delta: number): Promise<void> => {
      const block = await this.blockFor(c);
      if (block === null || block === 'error') return;
      const value = getRefcountEntry(block.bytes, block.view, c % this.epb, this.order) + delta;
      setRefcountEntry(block.bytes, block.view, c % this.epb, this.order, Math.max(0, Math.min(value, this.maxRefcount)));
      block.dirty = true;
    };
    for (let c = start; c < start + count; c++) await setRefcount(c, 1);
    await this.writeDirtyBlocks();
    const padded = new Uint8Array(count * cs);
    padded.set(bytes);
    await this.file.write(start * cs, padded);
    await this.file.flush();
    const fields = new Uint8Array(12);
    const view = new DataView(fields.buffer);
    view.setUint32(0, snapshots.length);
    view.setBigUint64(4, BigInt(start * cs));
    await this.file.write(60, fields);
    await this.file.flush();
    const oldOffset = h.snapshotsOffset;
    h.snapshotsOffset = start * cs;
    if (oldSize > 0) {
      for (let c = Math.floor(oldOffset / cs); c <= Math.floor((oldOffset + oldSize - 1) / cs); c++) await setRefcount(c, -1);
    }
    await this.writeDirtyBlocks();
  }

  /** qcow2_check_refcounts. */
  async run(fix: number): Promise<{ res: Counters; highest: number }> {
    await this.calculate(fix);
    const preCompare: Counters = { ...this.res };
    let highest = await this.compare(0);
    if (this.rebuild && (fix & FIX_ERRORS) !== 0) {
      const old: Counters = { ...this.res };
      await this.rebuildRefcountStructure();
      this.res.corruptions = 0;
      this.res.leaks = 0;
      // The references must be recounted against the new structure.
      this.rebuild = false;
      this.imrt = new RefcountArray(Math.max(this.nbClusters, Math.ceil(this.file.length / this.cs)));
      const kept = this.res;
      this.res = { ...kept, allocated: 0, fragmented: 0, compressed: 0 };
      await this.calculate(0);
      let freshLeaks = 0;
      if ((fix & FIX_LEAKS) !== 0) {
        // The old refcount structures are leaked now: fix that; only leaks that remain count.
        const saved = this.res;
        this.res = zeroCounters();
        highest = await this.compare(FIX_LEAKS);
        if (this.rebuild) this.log('ERROR rebuilt refcount structure is still broken');
        freshLeaks = this.res.leaks;
        this.res = saved;
      }
      if (this.res.corruptions < old.corruptions) this.res.corruptionsFixed += old.corruptions - this.res.corruptions;
      if (this.res.leaks < old.leaks) this.res.leaksFixed += old.leaks - this.res.leaks;
      this.res.leaks += freshLeaks;
    } else if (fix !== 0) {
      if (this.rebuild) {
        // qemu-img: "ERROR need to rebuild refcount structures", then "Check failed: Input/output error".
        this.log('ERROR need to rebuild refcount structures');
        throw new BlockError('CORRUPT_IMAGE', 'check failed: the refcount structure must be rebuilt (repair all)', { op: 'check' });
      }
      if (this.res.leaks > 0 || this.res.corruptions > 0) {
        this.res = preCompare;
        highest = await this.compare(fix);
      }
    }
    await this.checkOflagCopied(fix);
    return { res: this.res, highest };
  }
}

async function loadHeader(file: BlockFile): Promise<{ header: Qcow2Header; reftable: Uint8Array; bitmaps: BitmapsExtension | undefined }> {
  const first = new Uint8Array(112);
  await file.read(0, first);
  const clusterBits = peekClusterBits(first);
  const cs = 2 ** clusterBits;
  const cluster0 = new Uint8Array(cs);
  await file.read(0, cluster0);
  const header = parseQcow2Header(cluster0);
  const fail = (message: string): never => {
    throw new BlockError('CORRUPT_IMAGE', message, { op: 'check' });
  };
  // What qemu-img check cannot open either: it refuses these before checking.
  if (header.refcountTableOffset % cs !== 0) fail('refcount table offset is not cluster aligned');
  if (header.refcountTableClusters * cs > MAX_REFCOUNT_TABLE_BYTES) fail('refcount table too large');
  if (header.l1Size * 8 > MAX_L1_BYTES) fail('active L1 table too large');
  if (header.l1Size > 0 && header.l1TableOffset % cs !== 0) fail('L1 table offset is not cluster aligned');
  const bitmaps = bitmapsExtension(header);
  const reftable = new Uint8Array(header.refcountTableClusters * cs);
  if (reftable.length > 0 && header.refcountTableOffset < file.length) await file.read(header.refcountTableOffset, reftable);
  return { header, reftable, bitmaps };
}

async function checkOnce(file: BlockFile, fix: number, filename: string | undefined): Promise<Qcow2CheckResult> {
  const { header, reftable, bitmaps } = await loadHeader(file);
  const messages: string[] = [];
  const checker = new Checker(file, header, reftable, messages);
  checker.bitmaps = bitmaps;
  // qcow2_co_check_locked: the snapshot table first (it may lower nb_snapshots in the header),
  // then the refcounts, then the snapshot table's repair (a rewrite needs sound refcounts).
  const table = await readSnapshotTableForCheck(file, header, (fix & FIX_ERRORS) !== 0, (m) => checker.log(m));
  checker.snapshotTable = table;
  const { res, highest } = await checker.run(fix);
  if (table.corruptions > 0 && (fix & FIX_ERRORS) !== 0) {
    await checker.rewriteSnapshotTable(table.snapshots);
    table.corruptionsFixed += table.corruptions;
    table.corruptions = 0;
  }
  // qcow2_add_check_result: the snapshot table's findings come on top of the refcount check's.
  res.corruptions += table.corruptions;
  res.corruptionsFixed += table.corruptionsFixed;
  if (fix !== 0 && res.checkErrors === 0 && res.corruptions === 0 && !file.readOnly) {
    // qcow2_mark_clean and qcow2_mark_consistent: clear the dirty and corrupt bits.
    const bits = header.incompatibleFeatures & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
    if (header.version === 3 && bits !== 0n) {
      const field = new Uint8Array(8);
      new DataView(field.buffer).setBigUint64(0, header.incompatibleFeatures & ~bits);
      await file.flush();
      await file.write(72, field);
    }
  }
  if (fix !== 0) await file.flush();
  const cs = checker.cs;
  return {
    ...(filename === undefined ? {} : { filename }),
    format: 'qcow2',
    'check-errors': res.checkErrors,
    corruptions: res.corruptions,
    leaks: res.leaks,
    'corruptions-fixed': res.corruptionsFixed,
    'leaks-fixed': res.leaksFixed,
    'image-end-offset': (highest + 1) * cs,
    'total-clusters': Math.ceil(header.size / cs),
    'allocated-clusters': res.allocated,
    'fragmented-clusters': res.fragmented,
    'compressed-clusters': res.compressed,
    messages,
  };
}

/**
 * Checks (and with `repair`, repairs) a qcow2 image, like `qemu-img check [-r leaks|all]`. When
 * something was repaired, the image is checked again and that second result is returned with the
 * fixed counts of the first, as qemu-img reports it.
 *
 * @example
 * ```ts
 * const result = await checkQcow2(file, { repair: 'leaks', filename: 'disk.qcow2' });
 * console.log(JSON.stringify(qemuImgCheckJson(result), null, 4));
 * ```
 */
export async function checkQcow2(file: BlockFile, options: Qcow2CheckOptions = {}): Promise<Qcow2CheckResult> {
  if (options.repair !== undefined && file.readOnly) {
    throw new BlockError('READ_ONLY', 'repair needs a writable file', { op: 'check' });
  }
  const fix = options.repair === 'all' ? FIX_LEAKS | FIX_ERRORS : options.repair === 'leaks' ? FIX_LEAKS : 0;
  const first = await checkOnce(file, fix, options.filename);
  if (fix === 0 || (first['corruptions-fixed'] === 0 && first['leaks-fixed'] === 0)) return first;
  const second = await checkOnce(file, 0, options.filename);
  return {
    ...second,
    'corruptions-fixed': first['corruptions-fixed'],
    'leaks-fixed': first['leaks-fixed'],
    messages: [...first.messages, ...second.messages],
  };
}

/**
 * The result as `qemu-img check --output=json` prints it: its key order, zero counters left out
 * (except `check-errors`), no messages.
 */
export function qemuImgCheckJson(result: Qcow2CheckResult): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  const optional = (key: keyof Qcow2CheckResult): void => {
    const value = result[key];
    if (typeof value === 'number' && value !== 0) out[key] = value;
  };
  // The key order qemu-img 7.2 prints.
  optional('image-end-offset');
  optional('compressed-clusters');
  optional('total-clusters');
  optional('corruptions');
  optional('corruptions-fixed');
  out['check-errors'] = result['check-errors'];
  optional('leaks');
  optional('leaks-fixed');
  optional('allocated-clusters');
  if (result.filename !== undefined) out.filename = result.filename;
  out.format = result.format;
  optional('fragmented-clusters');
  return out;
}

/** qemu-img check's exit status for a result: 0 clean, 1 check errors, 2 corruptions, 3 leaks. */
export function checkExitCode(result: Qcow2CheckResult): 0 | 1 | 2 | 3 {
  if (result['check-errors'] > 0) return 1;
  if (result.corruptions > 0) return 2;
  if (result.leaks > 0) return 3;
  return 0;
}

function offsetOfCompressed(hi: number, lo: number, x: number): number {
  return (hi & ((1 << (x - 32)) - 1)) * TWO_32 + (lo >>> 0);
}
