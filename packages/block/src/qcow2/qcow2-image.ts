/**
 * `Qcow2Image`: the parsed state of an open qcow2 image and the metadata primitives every qcow2
 * feature builds on (the data path in qcow2-driver.ts, and snapshots/check/compression written
 * beside it).
 *
 * ## Concurrency
 * `lock` is the per-image lock ({@link RwLock}). Guest reads and guest writes hold it *shared*;
 * structural changes (zeroing, discard, compressed writes, resize, snapshots, flush, close) hold it
 * *exclusive*. Allocating guest writes change metadata while holding `lock` shared: they do so
 * only inside `metadataMutex`, in two short sections (allocate, then link once the data is
 * written; see qcow2-driver.ts). So every mutating method below must be called either with `lock`
 * held exclusively, or with `lock` held shared *and* `metadataMutex` held; they take neither
 * themselves (neither is re-entrant). Queued frees are applied only under `lock` exclusive
 * ({@link Qcow2Image.flushMetadata}), so a reader holding `lock` shared never sees a host cluster
 * it is reading freed and reused.
 *
 * ## Crash safety: the write order
 * Metadata is cached write-back and reaches the disk only through {@link Qcow2Image.flushMetadata},
 * in this order, with a flush (barrier) between stages:
 *   1. guest data clusters (written directly by the data path) and refcount blocks (increases),
 *      then flush; then the refcount table entries of new refcount blocks, then flush;
 *   2. L2 tables, then flush;
 *   3. the L1 table (and header fields), then flush;
 *   4. only now refcount *decreases* queued with {@link Qcow2Image.freeClustersLater} are applied
 *      (in memory; they are written at the next stage 1), so a freed cluster is reused only once
 *      no table on disk points at it.
 * New refcount blocks, a grown refcount table and a relocated L1 table are written and flushed
 * before the pointer to them, and the old copy is freed after the pointer is flushed. A crash at
 * any point therefore leaves refcounts >= references (leaks at worst, never corruption), and
 * everything written before a completed `flush()` is reachable after it.
 * With lazy refcounts (compatible bit 0) the dirty bit is set and flushed before the first metadata
 * change; refcount blocks are then written lazily and the bit is cleared on close.
 */
import type { BlockDriver, BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { Mutex, RwLock } from '../rw-lock.js';
import { MetadataCache, type CachedTable } from './cache.js';
import type { Qcow2Codec } from './codec.js';
import {
  AUTOCLEAR_BITMAPS,
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_COMPRESSION,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
  INCOMPAT_SUPPORTED,
  KNOWN_FEATURE_NAMES,
  MAX_L1_BYTES,
  MAX_REFCOUNT_TABLE_BYTES,
  MAX_SNAPSHOTS,
  MIN_EXTL2_CLUSTER_BITS,
  SUBCLUSTERS_PER_CLUSTER,
} from './constants.js';
import {
  featureNamesOf,
  parseQcow2Header,
  peekClusterBits,
  serializeQcow2Header,
  writeFixedFields,
  type Qcow2Header,
} from './header.js';
import {
  decodeL1Entry,
  decodeL2Entry,
  entryOffset,
  encodeL1Entry,
  encodeL2Entry,
  type L1Entry,
  type L2Entry,
  type L2Format,
} from './l2-entry.js';
import { RefcountManager } from './refcount.js';

/** Options for opening a qcow2 image. */
export interface Qcow2OpenOptions {
  /** Open read-only (default false; forced when the file is read-only). */
  readonly readOnly?: boolean;
  /**
   * Opens the backing file named in the header. Without it, an image that has a backing file is
   * refused (INVALID_ARGUMENT) unless `ignoreBacking` is set: backing files are opened only when
   * the caller allows them. The pure layer cannot resolve paths: the Node `openImage` supplies
   * this callback (relative names against the image's directory, depth and loop checks).
   */
  readonly openBacking?: (name: string, format: string | undefined) => Promise<BlockDriver>;
  /** Treat the image as if it had no backing file (unallocated clusters read as zeroes). */
  readonly ignoreBacking?: boolean;
  /** Codecs for compressed clusters. Without one, reading a compressed cluster is UNSUPPORTED. */
  readonly codecs?: { readonly deflate?: Qcow2Codec; readonly zstd?: Qcow2Codec };
  /** L2 table cache budget in bytes (default 4 MiB: 32 GiB of a 64 KiB-cluster disk). */
  readonly l2CacheBytes?: number;
  /** Refcount block cache budget in bytes (default 1 MiB). */
  readonly refcountCacheBytes?: number;
  /**
   * Repairs refcounts of an image opened writable with the dirty bit set. Default: the minimal
   * built-in repair (raise every refcount that is below the references from the active tables).
   */
  readonly repairDirty?: (image: Qcow2Image) => Promise<void>;
  /** Path for error messages. */
  readonly path?: string;
}

const DEFAULT_L2_CACHE_BYTES = 4 * 1024 * 1024;
const DEFAULT_REFCOUNT_CACHE_BYTES = 1024 * 1024;
/** Frees queued before a flush is forced (bounds memory of the queue). */
const MAX_PENDING_FREES = 4096;

/** An entry read from an L2 table, with where it came from. */
export interface L2Slot {
  readonly table: CachedTable;
  readonly index: number;
}

export class Qcow2Image {
  readonly file: BlockFile;
  readonly header: Qcow2Header;
  readonly readOnly: boolean;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** True when L2 entries are 128-bit (subclusters). */
  readonly extendedL2: boolean;
  /** Entries per L2 table. */
  readonly l2Entries: number;
  /** Bytes per L2 entry (8 or 16). */
  readonly l2EntryBytes: number;
  readonly subclusterSize: number;
  readonly l2Format: L2Format;
  /** The per-image lock. See the module comment. */
  readonly lock = new RwLock();
  /** Serialises metadata changes made under `lock` shared (allocating writes). See the module comment. */
  readonly metadataMutex = new Mutex();
  readonly l2Cache: MetadataCache;
  readonly refcounts: RefcountManager;
  readonly codecs: { readonly deflate?: Qcow2Codec; readonly zstd?: Qcow2Codec };
  /** The opened backing image, if any (closed with this image). */
  backing: BlockDriver | undefined;
  /** Active L1 table in on-disk (big-endian) form. */
  l1Table: Uint8Array;
  #l1View: DataView;
  #l1Dirty = false;
  #pendingFrees: { offset: number; length: number }[] = [];
  #lazyDirtySet = false;
  #corrupt: boolean;
  readonly path: string | undefined;

  private constructor(file: BlockFile, header: Qcow2Header, l1: Uint8Array, refTable: Uint8Array, readOnly: boolean, options: Qcow2OpenOptions) {
    this.file = file;
    this.header = header;
    this.readOnly = readOnly;
    this.path = options.path;
    this.clusterBits = header.clusterBits;
    this.clusterSize = 2 ** header.clusterBits;
    this.extendedL2 = (header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
    this.l2EntryBytes = this.extendedL2 ? 16 : 8;
    this.l2Entries = this.clusterSize / this.l2EntryBytes;
    this.subclusterSize = this.extendedL2 ? this.clusterSize / SUBCLUSTERS_PER_CLUSTER : this.clusterSize;
    this.l2Format = { clusterBits: this.clusterBits, extendedL2: this.extendedL2, zeroFlag: header.version === 3 && !this.extendedL2 };
    this.l1Table = l1;
    this.#l1View = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    this.l2Cache = new MetadataCache(file, this.clusterSize, options.l2CacheBytes ?? DEFAULT_L2_CACHE_BYTES);
    this.refcounts = new RefcountManager({
      file,
      clusterBits: this.clusterBits,
      refcountOrder: header.refcountOrder,
      tableOffset: header.refcountTableOffset,
      table: refTable,
      cacheBytes: options.refcountCacheBytes ?? DEFAULT_REFCOUNT_CACHE_BYTES,
      onTableMoved: async (offset, clusters) => {
        this.header.refcountTableOffset = offset;
        this.header.refcountTableClusters = clusters;
        await this.writeHeaderFields();
        await this.file.flush();
      },
    });
    this.codecs = options.codecs ?? {};
    this.#corrupt = (header.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n;
  }

  /**
   * Parses and validates the header and the tables it points to, and applies the open-time
   * rules: unsupported features refuse, the corrupt bit forces read-only use (refused writable,
   * as QEMU does), a dirty image opened writable is repaired, unknown autoclear bits are cleared.
   * Does not open the backing file (the driver does).
   */
  static async open(file: BlockFile, options: Qcow2OpenOptions = {}): Promise<Qcow2Image> {
    const readOnly = options.readOnly === true || file.readOnly;
    const path = options.path;
    const first = new Uint8Array(112);
    await file.read(0, first);
    const clusterBits = peekClusterBits(first);
    const clusterSize = 2 ** clusterBits;
    const cluster0 = new Uint8Array(clusterSize);
    await file.read(0, cluster0);
    const header = parseQcow2Header(cluster0);
    const fail = (code: 'INVALID_FORMAT' | 'CORRUPT_IMAGE' | 'UNSUPPORTED', message: string): never => {
      throw new BlockError(code, message, path === undefined ? { op: 'open' } : { op: 'open', path });
    };
    if (header.cryptMethod !== 0) fail('UNSUPPORTED', `qcow2 encryption (crypt_method ${header.cryptMethod}) is not supported`);
    const unknown = header.incompatibleFeatures & ~INCOMPAT_SUPPORTED;
    if ((header.incompatibleFeatures & INCOMPAT_DATA_FILE) !== 0n) fail('UNSUPPORTED', 'qcow2 external data file is not supported');
    if (unknown !== 0n) {
      const names = featureNamesOf(header);
      const bits: string[] = [];
      for (let bit = 0; bit < 64; bit++) {
        if ((unknown & (1n << BigInt(bit))) === 0n) continue;
        const named = names.find((n) => n.type === 0 && n.bit === bit)?.name;
        bits.push(named === undefined ? `bit ${bit}` : `${named} (bit ${bit})`);
      }
      fail('UNSUPPORTED', `qcow2 image uses unsupported incompatible features: ${bits.join(', ')}`);
    }
    if ((header.incompatibleFeatures & INCOMPAT_COMPRESSION) !== 0n) {
      if (header.compressionType === 0) fail('INVALID_FORMAT', 'compression type bit set but compression_type is 0');
      if (header.compressionType !== 1) fail('UNSUPPORTED', `qcow2 compression type ${header.compressionType} is not supported`);
    } else if (header.compressionType !== 0) {
      fail('INVALID_FORMAT', `compression_type ${header.compressionType} without the compression type bit`);
    }
    if ((header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n && clusterBits < MIN_EXTL2_CLUSTER_BITS) {
      fail('INVALID_FORMAT', 'extended L2 entries need clusters of at least 16 KiB');
    }
    if (header.version === 2) header.refcountOrder = 4;
    const fileClusters = Math.ceil(file.length / clusterSize);

    // Refcount table: aligned, not over the header, at most 8 MiB, inside the file.
    if (header.refcountTableOffset % clusterSize !== 0) fail('CORRUPT_IMAGE', 'refcount table offset is not cluster aligned');
    if (header.refcountTableClusters === 0) fail('CORRUPT_IMAGE', 'refcount table is empty');
    if (header.refcountTableClusters * clusterSize > MAX_REFCOUNT_TABLE_BYTES) {
      fail('INVALID_FORMAT', `refcount table too large (${header.refcountTableClusters} clusters, limit 8 MiB)`);
    }
    if (header.refcountTableOffset < clusterSize) fail('CORRUPT_IMAGE', 'refcount table overlaps the header');
    if (header.refcountTableOffset / clusterSize + header.refcountTableClusters > fileClusters) {
      fail('CORRUPT_IMAGE', 'refcount table extends past the end of the file');
    }
    // L1 table: at most 32 MiB, aligned, inside the file, big enough for the virtual size.
    if (header.l1Size * 8 > MAX_L1_BYTES) fail('INVALID_FORMAT', `L1 table too large (${header.l1Size} entries, limit 32 MiB)`);
    const l2Entries = clusterSize / ((header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n ? 16 : 8);
    const neededL1 = Math.ceil(header.size / (clusterSize * l2Entries));
    if (header.l1Size < neededL1) fail('CORRUPT_IMAGE', `L1 table too small for the virtual size (${header.l1Size} < ${neededL1})`);
    if (header.l1Size > 0) {
      if (header.l1TableOffset % clusterSize !== 0) fail('CORRUPT_IMAGE', 'L1 table offset is not cluster aligned');
      if (header.l1TableOffset < clusterSize) fail('CORRUPT_IMAGE', 'L1 table overlaps the header');
      if (header.l1TableOffset / clusterSize + Math.ceil((header.l1Size * 8) / clusterSize) > fileClusters) {
        fail('CORRUPT_IMAGE', 'L1 table extends past the end of the file');
      }
    }
    if (header.nbSnapshots > MAX_SNAPSHOTS) fail('INVALID_FORMAT', `too many snapshots (${header.nbSnapshots})`);
    if (header.nbSnapshots > 0 && (header.snapshotsOffset % clusterSize !== 0 || header.snapshotsOffset < clusterSize)) {
      fail('CORRUPT_IMAGE', 'snapshot table offset invalid');
    }
    const incompat = header.incompatibleFeatures;
    if (!readOnly && (incompat & INCOMPAT_CORRUPT) !== 0n) {
      fail('CORRUPT_IMAGE', 'qcow2 image is marked corrupt; it can only be opened read-only (repair it with check -r)');
    }

    const l1 = new Uint8Array(header.l1Size * 8);
    if (l1.length > 0) await file.read(header.l1TableOffset, l1);
    const refTable = new Uint8Array(header.refcountTableClusters * clusterSize);
    await file.read(header.refcountTableOffset, refTable);
    const image = new Qcow2Image(file, header, l1, refTable, readOnly, options);

    if (!readOnly) {
      if ((incompat & INCOMPAT_DIRTY) !== 0n) {
        await (options.repairDirty ?? repairDirtyMinimal)(image);
        await image.flushMetadata();
        await image.refcounts.writeDirty();
        await file.flush();
        header.incompatibleFeatures &= ~INCOMPAT_DIRTY;
        await image.writeHeaderFields();
        await file.flush();
      }
      // qcow2 spec: "An implementation may only write to an image with unknown auto-clear
      // features if it clears the respective bits from this field first." We maintain no
      // autoclear feature (not even bitmaps: our writes would make them stale), so clear all.
      if (header.autoclearFeatures !== 0n) {
        header.autoclearFeatures = 0n;
        await image.writeHeaderFields();
        await file.flush();
      }
    }
    return image;
  }

  /** Virtual disk size in bytes. */
  get size(): number {
    return this.header.size;
  }

  /** True when the image is (or was found) corrupt: writes are refused. */
  get corrupt(): boolean {
    return this.#corrupt;
  }

  /** Whether lazy refcounts are in use (compatible bit 0, writable). */
  get lazyRefcounts(): boolean {
    return !this.readOnly && (this.header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
  }

  /** Whether the image carries bitmaps we keep but do not maintain (the extension stays intact). */
  get hasBitmaps(): boolean {
    return (this.header.autoclearFeatures & AUTOCLEAR_BITMAPS) !== 0n;
  }

  // ---- L1 ------------------------------------------------------------------------------------

  get l1Size(): number {
    return this.l1Table.length / 8;
  }

  /**
   * The hot path of reads and in-place writes, with no allocation and no await: the host cluster
   * offset of guest cluster `clusterIndex` when its L2 table is cached and its entry is a plain
   * allocated cluster (standard L2 entries; with `copied`, also refcount 1). Otherwise -1, and
   * the caller takes the general path (which also reports corrupt entries).
   */
  plainHostCluster(clusterIndex: number, copied: boolean): number {
    if (this.extendedL2) return -1;
    const l1Index = Math.floor(clusterIndex / this.l2Entries);
    if (l1Index >= this.l1Size) return -1;
    const view = this.#l1View;
    const l1Hi = view.getUint32(l1Index * 8);
    const l1Lo = view.getUint32(l1Index * 8 + 4);
    // Reserved bits 56-62 and 0-8 clear (bit 63, copied, may be either).
    if ((l1Hi & 0x7f000000) !== 0 || (l1Lo & 0x1ff) !== 0) return -1;
    const l2Offset = entryOffset(l1Hi, l1Lo);
    if (l2Offset < this.clusterSize || l2Offset % this.clusterSize !== 0) return -1;
    const table = this.l2Cache.peek(l2Offset);
    if (table === undefined) return -1;
    const p = (clusterIndex % this.l2Entries) * 8;
    const hi = table.view.getUint32(p);
    const lo = table.view.getUint32(p + 4);
    // Not compressed (bit 62), reserved bits 56-61 and 1-8 clear, not a zero cluster (bit 0).
    if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) return -1;
    if (copied && (hi & 0x80000000) === 0) return -1;
    const host = entryOffset(hi, lo);
    return host > 0 && host % this.clusterSize === 0 ? host : -1;
  }

  /** Decoded L1 entry `index` (CORRUPT_IMAGE on reserved bits or misalignment). */
  l1Entry(index: number): L1Entry {
    if (index >= this.l1Size) return { offset: 0, copied: false };
    const entry = decodeL1Entry(this.#l1View.getUint32(index * 8), this.#l1View.getUint32(index * 8 + 4), this.clusterBits);
    if (entry.offset !== 0 && entry.offset < this.clusterSize) throw this.signalCorruption(`L1 entry ${index} points at the header`);
    return entry;
  }

  /** Sets L1 entry `index` in memory; written by {@link flushMetadata} (stage 3). Exclusive lock. */
  setL1Entry(index: number, entry: L1Entry): void {
    const [hi, lo] = encodeL1Entry(entry);
    this.#l1View.setUint32(index * 8, hi);
    this.#l1View.setUint32(index * 8 + 4, lo);
    this.#l1Dirty = true;
  }

  /** Writes the whole active L1 table now (no flush). Exclusive lock; mind the write order. */
  async writeL1(): Promise<void> {
    if (this.l1Table.length > 0) await this.file.write(this.header.l1TableOffset, this.l1Table);
    this.#l1Dirty = false;
  }

  /**
   * Replaces the active L1 table (for L1 growth and snapshot switches): installs `table` at
   * `offset` (already written and flushed by the caller), updates and flushes the header.
   */
  async replaceL1(offset: number, table: Uint8Array): Promise<void> {
    this.header.l1TableOffset = offset;
    this.header.l1Size = table.length / 8;
    await this.writeHeaderFields();
    await this.file.flush();
    this.l1Table = table;
    this.#l1View = new DataView(table.buffer, table.byteOffset, table.byteLength);
    this.#l1Dirty = false;
  }

  // ---- L2 ------------------------------------------------------------------------------------

  /** The L2 table at `l2Offset` (cached). Validates the offset against the file. */
  async readL2(l2Offset: number): Promise<CachedTable> {
    if (!this.l2Cache.has(l2Offset) && l2Offset + this.clusterSize > Math.ceil(this.file.length / this.clusterSize) * this.clusterSize) {
      throw this.signalCorruption(`L2 table at 0x${l2Offset.toString(16)} is past the end of the file`);
    }
    return this.l2Cache.get(l2Offset);
  }

  /** Decodes entry `index` of a cached L2 table. */
  l2Entry(table: CachedTable, index: number): L2Entry {
    const p = index * this.l2EntryBytes;
    const v = table.view;
    try {
      return decodeL2Entry(
        {
          hi: v.getUint32(p),
          lo: v.getUint32(p + 4),
          bitmapHi: this.extendedL2 ? v.getUint32(p + 8) : 0,
          bitmapLo: this.extendedL2 ? v.getUint32(p + 12) : 0,
        },
        this.l2Format,
      );
    } catch (error) {
      if (BlockError.isInstance(error) && error.code === 'CORRUPT_IMAGE') throw this.signalCorruption(error.message);
      throw error;
    }
  }

  /** True when entry `index` is all zero bits (including the bitmap). */
  l2EntryIsEmpty(table: CachedTable, index: number): boolean {
    const p = index * this.l2EntryBytes;
    for (let i = 0; i < this.l2EntryBytes; i += 4) if (table.view.getUint32(p + i) !== 0) return false;
    return true;
  }

  /** Sets entry `index` of a cached L2 table in memory (written at stage 2). Exclusive lock. */
  writeL2Entry(table: CachedTable, index: number, entry: L2Entry): void {
    const raw = encodeL2Entry(entry, this.l2Format);
    const p = index * this.l2EntryBytes;
    table.view.setUint32(p, raw.hi);
    table.view.setUint32(p + 4, raw.lo);
    if (this.extendedL2) {
      table.view.setUint32(p + 8, raw.bitmapHi);
      table.view.setUint32(p + 12, raw.bitmapLo);
    }
    this.l2Cache.markDirty(table);
  }

  // ---- refcounts and allocation -------------------------------------------------------------

  /** Refcount of host cluster `clusterIndex`. */
  getRefcount(clusterIndex: number): Promise<number> {
    return this.refcounts.getRefcount(clusterIndex);
  }

  /** Sets a refcount (increases are ordered before tables by flushMetadata). Exclusive lock. */
  setRefcount(clusterIndex: number, value: number): Promise<void> {
    return this.refcounts.setRefcount(clusterIndex, value);
  }

  /** Adds `delta` to a refcount; a negative delta is immediate: prefer freeClustersLater. Exclusive lock. */
  updateRefcount(clusterIndex: number, delta: number): Promise<number> {
    return this.refcounts.updateRefcount(clusterIndex, delta);
  }

  /** Allocates `count` contiguous clusters (refcount 1); returns the host offset. Exclusive lock. */
  async allocateClusters(count: number): Promise<number> {
    await this.markDirtyIfLazy();
    return this.refcounts.allocateClusters(count);
  }

  /**
   * Drops one reference from every cluster overlapping `[offset, offset+length)` once the tables
   * that no longer point there are on disk (stage 4 of flushMetadata). Exclusive lock.
   */
  freeClustersLater(offset: number, length: number): void {
    this.#pendingFrees.push({ offset, length });
  }

  /** Drops references now. Only safe when no table on disk references the range. Exclusive lock. */
  async freeClusters(offset: number, length: number): Promise<void> {
    await this.refcounts.freeRange(offset, length);
  }

  // ---- header ---------------------------------------------------------------------------------

  /** Rewrites the fixed header fields (bytes 0..103, or 0..71 for v2) in place (no flush). */
  async writeHeaderFields(): Promise<void> {
    const length = this.header.version === 2 ? 72 : 104;
    const bytes = new Uint8Array(length);
    writeFixedFields(new DataView(bytes.buffer), this.header);
    await this.file.write(0, bytes);
  }

  /** Rewrites the whole header cluster (fields, extensions, backing name) (no flush). */
  async writeHeader(): Promise<void> {
    await this.file.write(0, serializeQcow2Header(this.header));
  }

  /** With lazy refcounts: sets and flushes the dirty bit before the first metadata change. */
  async markDirtyIfLazy(): Promise<void> {
    if (!this.lazyRefcounts || this.#lazyDirtySet) return;
    this.header.incompatibleFeatures |= INCOMPAT_DIRTY;
    await this.writeHeaderFields();
    await this.file.flush();
    this.#lazyDirtySet = true;
  }

  /**
   * Records corruption: on a writable v3 image sets the corrupt bit (best effort, as QEMU's
   * qcow2_signal_corruption does); later writes are refused. Returns the error to throw.
   */
  signalCorruption(message: string): BlockError {
    const error = new BlockError('CORRUPT_IMAGE', message, this.path === undefined ? {} : { path: this.path });
    if (!this.#corrupt && !this.readOnly && this.header.version === 3) {
      this.header.incompatibleFeatures |= INCOMPAT_CORRUPT;
      void this.writeHeaderFields()
        .then(() => this.file.flush())
        .catch(() => undefined);
    }
    this.#corrupt = true;
    return error;
  }

  // ---- ordering ------------------------------------------------------------------------------

  /** True when metadata is waiting in memory (dirty tables, L1 or queued frees). */
  get hasDirtyMetadata(): boolean {
    return (
      this.#l1Dirty ||
      this.l2Cache.dirtyCount > 0 ||
      this.refcounts.cache.dirtyCount > 0 ||
      this.refcounts.tableDirty ||
      this.#pendingFrees.length > 0
    );
  }

  /**
   * Writes cached metadata in the crash-safe order (see the module comment) and applies queued
   * frees. Exclusive lock.
   */
  async flushMetadata(): Promise<void> {
    if (this.readOnly) return;
    if (!this.lazyRefcounts || !this.#lazyDirtySet || this.refcounts.tableDirty) await this.refcounts.writeDirty();
    await this.file.flush();
    if (this.refcounts.tableDirty) {
      await this.refcounts.writeDirtyTableEntries();
      await this.file.flush();
    }
    // Within a stage the order does not matter (the flush after it is the barrier): write the
    // dirty tables all at once.
    const dirtyL2 = this.l2Cache.dirtyTables();
    await settleAll(dirtyL2.map((table) => this.l2Cache.writeBack(table)));
    if (this.#l1Dirty) {
      if (dirtyL2.length > 0) await this.file.flush();
      await this.writeL1();
      await this.file.flush();
    } else if (dirtyL2.length > 0) {
      await this.file.flush();
    }
    const frees = this.#pendingFrees;
    this.#pendingFrees = [];
    for (const free of frees) {
      await this.refcounts.freeRange(free.offset, free.length);
      const first = Math.floor(free.offset / this.clusterSize);
      const last = Math.floor((free.offset + free.length - 1) / this.clusterSize);
      for (let c = first; c <= last; c++) {
        if ((await this.refcounts.getRefcount(c)) === 0) this.l2Cache.drop(c * this.clusterSize);
      }
    }
  }

  /** True when {@link afterMetadataOperation} has work to do (caches or the free queue over budget). */
  get needsMaintenance(): boolean {
    return this.l2Cache.overBudget || this.#pendingFrees.length > MAX_PENDING_FREES || this.refcounts.cache.overBudget;
  }

  /** Called at the end of each exclusive operation: writes back when caches or queues are over budget. */
  async afterMetadataOperation(): Promise<void> {
    if (this.l2Cache.overBudget || this.#pendingFrees.length > MAX_PENDING_FREES) {
      await this.flushMetadata();
    } else if (this.refcounts.cache.overBudget) {
      if (this.lazyRefcounts && this.#lazyDirtySet) await this.refcounts.writeDirty();
      else await this.flushMetadata();
    }
  }

  /** Flushes metadata (twice, so that applied frees are written) and clears the lazy dirty bit. Exclusive lock. */
  async closeMetadata(): Promise<void> {
    if (this.readOnly) return;
    await this.flushMetadata();
    await this.refcounts.writeDirty();
    await this.file.flush();
    if (this.#lazyDirtySet) {
      this.header.incompatibleFeatures &= ~INCOMPAT_DIRTY;
      await this.writeHeaderFields();
      await this.file.flush();
      this.#lazyDirtySet = false;
    }
  }

  /** Refuses a write on a read-only or corrupt image. */
  checkWritable(op: string): void {
    if (this.readOnly) throw new BlockError('READ_ONLY', 'the image is open read-only', { op });
    if (this.#corrupt) throw new BlockError('CORRUPT_IMAGE', 'the image is corrupt; writes are refused', { op });
  }

  /**
   * Refuses a data write whose host range overlaps metadata we know (header, L1, refcount table,
   * cached L2 tables and refcount blocks) — a hostile L2 entry must not make us overwrite them
   * (QEMU's overlap check, "cached" level).
   */
  checkDataOverlap(hostOffset: number, length: number): void {
    const cs = this.clusterSize;
    const end = hostOffset + length;
    const overlaps = (start: number, bytes: number): boolean => hostOffset < start + bytes && start < end;
    if (
      overlaps(0, cs) ||
      overlaps(this.header.l1TableOffset, this.l1Table.length) ||
      overlaps(this.refcounts.tableOffset, this.refcounts.tableClusters * cs)
    ) {
      throw this.signalCorruption(`data write at 0x${hostOffset.toString(16)} would overwrite metadata`);
    }
    for (let c = Math.floor(hostOffset / cs); c * cs < end; c++) {
      if (this.l2Cache.has(c * cs) || this.refcounts.cache.has(c * cs)) {
        throw this.signalCorruption(`data write at 0x${hostOffset.toString(16)} would overwrite metadata`);
      }
    }
  }

  /** The codec for this image's compression type, or UNSUPPORTED. */
  codec(): Qcow2Codec {
    const type = this.header.compressionType === 1 ? 'zstd' : 'deflate';
    const codec = this.codecs[type];
    if (codec === undefined) {
      throw new BlockError('UNSUPPORTED', `compressed clusters need a ${type} codec (pass codecs.${type} when opening)`);
    }
    return codec;
  }

  /** Feature names for messages. */
  static featureName(type: 0 | 1 | 2, bit: number): string | undefined {
    return KNOWN_FEATURE_NAMES.find((f) => f.type === type && f.bit === bit)?.name;
  }
}

/**
 * The minimal repair for a dirty image (lazy refcounts left refcounts too low): counts the
 * references of the header, the L1 and refcount tables, refcount blocks, the active L2 tables and
 * the clusters they map, and raises every refcount that is below its count. It never lowers a
 * refcount (a leak is harmless; counting every structure — snapshots, bitmaps — precisely is
 * check/repair's job), so it cannot free anything still in use.
 */
export async function repairDirtyMinimal(image: Qcow2Image): Promise<void> {
  const cs = image.clusterSize;
  const fileClusters = Math.ceil(image.file.length / cs);
  const counts = new Map<number, number>();
  const add = (offset: number, length: number): void => {
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    if (last >= fileClusters) throw image.signalCorruption(`reference to 0x${offset.toString(16)} past the end of the file`);
    for (let c = first; c <= last; c++) counts.set(c, (counts.get(c) ?? 0) + 1);
  };
  add(0, cs);
  if (image.l1Table.length > 0) add(image.header.l1TableOffset, image.l1Table.length);
  add(image.refcounts.tableOffset, image.refcounts.tableClusters * cs);
  for (let i = 0; i < image.refcounts.tableEntries; i++) {
    const block = image.refcounts.blockOffset(i);
    if (block !== 0) add(block, cs);
  }
  for (let i = 0; i < image.l1Size; i++) {
    const l1 = image.l1Entry(i);
    if (l1.offset === 0) continue;
    add(l1.offset, cs);
    const table = await image.readL2(l1.offset);
    for (let j = 0; j < image.l2Entries; j++) {
      const entry = image.l2Entry(table, j);
      if (entry.kind === 'compressed') add(entry.offset, entry.compressedSize);
      else if (entry.offset !== 0) add(entry.offset, cs);
    }
  }
  for (const [cluster, count] of counts) {
    if ((await image.getRefcount(cluster)) < count) await image.setRefcount(cluster, Math.min(count, image.refcounts.maxRefcount));
  }
}

/** Waits for every request, then throws the first failure (no write is left running). */
export async function settleAll(requests: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(requests);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
}
