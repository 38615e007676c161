/**
 * The refcount manager: the refcount table (kept in memory), refcount blocks (through a
 * {@link MetadataCache}), cluster allocation, and growth of the table.
 *
 * Ordering guarantees (the crash rules, see also qcow2-image.ts):
 * - A refcount *increase* is held in the cache (dirty) and reaches the disk before any table
 *   that uses the cluster: the image writes dirty refcount blocks and flushes before it writes
 *   dirty L2 tables or the L1 table.
 * - A new refcount block is created dirty in the cache; its table entry is written only after the
 *   block is written and flushed (flushMetadata stage 1); a grown refcount table is written and flushed before the header points to it,
 *   and the old table is freed only after the header is flushed.
 * - A refcount *decrease* must happen only after the tables that stopped using the cluster are
 *   on disk; {@link Qcow2Image.freeClustersLater} provides that order. The methods here apply
 *   decreases immediately and leave ordering to the caller.
 * Every method must be called with the image's metadata lock held exclusively (reads of
 * refcounts under a shared lock are fine when nobody mutates).
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { MetadataCache, type CachedTable } from './cache.js';
import { MAX_HOST_OFFSET, MAX_REFCOUNT_TABLE_BYTES } from './constants.js';
import { entryOffset, splitOffset } from './l2-entry.js';
import { getRefcountEntry, maxRefcount, refcountEntriesPerBlock, setRefcountEntry } from './refcount-block.js';

/** Called after the refcount table moved; must write the header fields and flush. */
export type RefcountTableMoved = (offset: number, clusters: number) => Promise<void>;

export interface RefcountManagerOptions {
  readonly file: BlockFile;
  readonly clusterBits: number;
  readonly refcountOrder: number;
  readonly tableOffset: number;
  /** The table bytes (refcount_table_clusters clusters), as read from the file. */
  readonly table: Uint8Array;
  readonly cacheBytes: number;
  readonly onTableMoved: RefcountTableMoved;
}

export class RefcountManager {
  readonly file: BlockFile;
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly refcountOrder: number;
  /** Refcount entries per refcount block. */
  readonly entriesPerBlock: number;
  readonly maxRefcount: number;
  readonly cache: MetadataCache;
  #tableOffset: number;
  #table: Uint8Array;
  #tableView: DataView;
  /** Table entries of new refcount blocks, written at flush after the blocks. */
  readonly #dirtyTableEntries = new Set<number>();
  /** No cluster below this index is free (QEMU's free_cluster_index). */
  #freeHint = 0;
  readonly #onTableMoved: RefcountTableMoved;

  constructor(options: RefcountManagerOptions) {
    this.file = options.file;
    this.clusterBits = options.clusterBits;
    this.clusterSize = 2 ** options.clusterBits;
    this.refcountOrder = options.refcountOrder;
    this.entriesPerBlock = refcountEntriesPerBlock(options.clusterBits, options.refcountOrder);
    this.maxRefcount = maxRefcount(options.refcountOrder);
    this.cache = new MetadataCache(options.file, this.clusterSize, options.cacheBytes);
    this.#tableOffset = options.tableOffset;
    this.#table = options.table;
    this.#tableView = new DataView(options.table.buffer, options.table.byteOffset, options.table.byteLength);
    this.#onTableMoved = options.onTableMoved;
  }

  get tableOffset(): number {
    return this.#tableOffset;
  }

  /** Number of refcount table entries. */
  get tableEntries(): number {
    return this.#table.length / 8;
  }

  /** Clusters the refcount table occupies. */
  get tableClusters(): number {
    return Math.ceil(this.#table.length / this.clusterSize);
  }

  /**
   * Host offset of the refcount block for table index `index`, or 0 when unallocated. Throws
   * CORRUPT_IMAGE for a reserved bit, an unaligned offset or one past 2^53.
   */
  blockOffset(index: number): number {
    if (index >= this.tableEntries) return 0;
    const hi = this.#tableView.getUint32(index * 8);
    const lo = this.#tableView.getUint32(index * 8 + 4);
    if ((lo & 0x1ff) !== 0 || hi >= 1 << 21) {
      throw new BlockError('CORRUPT_IMAGE', `refcount table entry ${index} is invalid`);
    }
    const offset = entryOffset(hi, lo);
    if (offset % this.clusterSize !== 0) {
      throw new BlockError('CORRUPT_IMAGE', `refcount block offset 0x${offset.toString(16)} is not cluster aligned`);
    }
    if (offset !== 0 && offset < this.clusterSize) {
      throw new BlockError('CORRUPT_IMAGE', 'refcount block overlaps the header');
    }
    return offset;
  }

  /** Refcount of host cluster `clusterIndex` (0 past the table). */
  async getRefcount(clusterIndex: number): Promise<number> {
    const blockIndex = Math.floor(clusterIndex / this.entriesPerBlock);
    const offset = this.blockOffset(blockIndex);
    if (offset === 0) return 0;
    const block = await this.cache.get(offset);
    return getRefcountEntry(block.bytes, block.view, clusterIndex % this.entriesPerBlock, this.refcountOrder);
  }

  /** Sets the refcount of `clusterIndex`, creating its refcount block (and growing the table) if needed. */
  async setRefcount(clusterIndex: number, value: number): Promise<void> {
    if (value < 0 || value > this.maxRefcount || !Number.isSafeInteger(value)) {
      throw new BlockError('CORRUPT_IMAGE', `refcount ${value} out of range for ${1 << this.refcountOrder}-bit refcounts`);
    }
    const block = await this.#blockFor(clusterIndex);
    setRefcountEntry(block.bytes, block.view, clusterIndex % this.entriesPerBlock, this.refcountOrder, value);
    this.cache.markDirty(block);
    if (value === 0 && clusterIndex < this.#freeHint) this.#freeHint = clusterIndex;
  }

  /** Adds `delta` to the refcount of `clusterIndex`; returns the new value. Over/underflow is CORRUPT_IMAGE. */
  async updateRefcount(clusterIndex: number, delta: number): Promise<number> {
    const current = await this.getRefcount(clusterIndex);
    const next = current + delta;
    if (next < 0) {
      throw new BlockError('CORRUPT_IMAGE', `refcount of cluster ${clusterIndex} would drop below zero`);
    }
    if (next > this.maxRefcount) {
      throw new BlockError('UNSUPPORTED', `refcount of cluster ${clusterIndex} would overflow ${1 << this.refcountOrder} bits`);
    }
    await this.setRefcount(clusterIndex, next);
    return next;
  }

  /**
   * Finds `count` contiguous free clusters, sets their refcounts to 1 and returns the host offset
   * of the first. Never returns cluster 0. The clusters' contents are whatever the file holds.
   */
  async allocateClusters(count: number): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 1) throw new BlockError('INVALID_ARGUMENT', `bad cluster count ${count}`);
    for (;;) {
      let runStart = Math.max(1, this.#freeHint);
      let runLength = 0;
      for (let c = runStart; runLength < count; c++) {
        if ((c + 1) * this.clusterSize > MAX_HOST_OFFSET) {
          throw new BlockError('NO_SPACE', 'qcow2 host offsets would pass 2^53');
        }
        if ((await this.getRefcount(c)) === 0) {
          if (runLength === 0) runStart = c;
          runLength++;
        } else {
          runLength = 0;
        }
      }
      // Every refcount block covering the run must exist; a created block takes the first free
      // cluster, possibly inside our run: search again.
      let created = false;
      const firstBlock = Math.floor(runStart / this.entriesPerBlock);
      const lastBlock = Math.floor((runStart + count - 1) / this.entriesPerBlock);
      for (let b = firstBlock; b <= lastBlock; b++) {
        if (this.blockOffset(b) === 0) {
          await this.#createBlock(b);
          created = true;
        }
      }
      if (created) continue;
      for (let c = runStart; c < runStart + count; c++) await this.setRefcount(c, 1);
      // As QEMU's free_cluster_index: move past the run, skipping holes too small for this
      // request (a free lowers the hint again), so scans stay linear overall.
      this.#freeHint = runStart + count;
      return runStart * this.clusterSize;
    }
  }

  /** Decrements the refcount of every cluster overlapping `[offset, offset + length)`. Unordered: see class doc. */
  async freeRange(offset: number, length: number): Promise<void> {
    const first = Math.floor(offset / this.clusterSize);
    const last = Math.floor((offset + length - 1) / this.clusterSize);
    for (let c = first; c <= last; c++) await this.updateRefcount(c, -1);
  }

  /** Writes every dirty refcount block (no flush). */
  async writeDirty(): Promise<number> {
    const dirty = this.cache.dirtyTables();
    // One stage of the write order: the blocks go out together (the caller flushes after).
    const results = await Promise.allSettled(dirty.map((table) => this.cache.writeBack(table)));
    for (const result of results) if (result.status === 'rejected') throw result.reason;
    return dirty.length;
  }

  async #blockFor(clusterIndex: number): Promise<CachedTable> {
    const blockIndex = Math.floor(clusterIndex / this.entriesPerBlock);
    let offset = this.blockOffset(blockIndex);
    if (offset === 0) {
      await this.#createBlock(blockIndex);
      offset = this.blockOffset(blockIndex);
    }
    return this.cache.get(offset);
  }

  /**
   * Creates the refcount block for table index `blockIndex`, placed (as QEMU does) at the first
   * free cluster: when that cluster lies in the range the new block covers, the block counts
   * itself; otherwise its refcount goes into the (existing) block that covers it. Placing it at
   * the first free cluster, rather than at the start of its range, keeps free space contiguous.
   * The block is created dirty; its table entry is written after it (see {@link writeDirtyTableEntries}).
   */
  async #createBlock(blockIndex: number, depth = 0): Promise<void> {
    if (depth > 4) throw new BlockError('CORRUPT_IMAGE', 'cannot place a new refcount block');
    if (blockIndex >= this.tableEntries) {
      await this.#growTable(blockIndex);
      if (this.blockOffset(blockIndex) !== 0) return;
    }
    for (;;) {
      let cluster = Math.max(1, this.#freeHint);
      while ((await this.getRefcount(cluster)) !== 0) cluster++;
      if ((cluster + 1) * this.clusterSize > MAX_HOST_OFFSET) throw new BlockError('NO_SPACE', 'qcow2 host offsets would pass 2^53');
      const home = Math.floor(cluster / this.entriesPerBlock);
      if (home !== blockIndex && this.blockOffset(home) === 0) {
        await this.#createBlock(home, depth + 1);
        if (this.blockOffset(blockIndex) !== 0) return;
        continue;
      }
      const offset = cluster * this.clusterSize;
      const block = this.cache.create(offset);
      this.#setTableEntry(blockIndex, offset);
      this.#dirtyTableEntries.add(blockIndex);
      if (home === blockIndex) {
        setRefcountEntry(block.bytes, block.view, cluster % this.entriesPerBlock, this.refcountOrder, 1);
      } else {
        await this.setRefcount(cluster, 1);
      }
      return;
    }
  }

  /** True when refcount table entries wait to be written (after their blocks are flushed). */
  get tableDirty(): boolean {
    return this.#dirtyTableEntries.size > 0;
  }

  /**
   * Writes the refcount table entries of new refcount blocks (no flush). The caller must have
   * written and flushed the blocks first (Qcow2Image.flushMetadata does).
   */
  async writeDirtyTableEntries(): Promise<void> {
    const indexes = [...this.#dirtyTableEntries].sort((a, b) => a - b);
    this.#dirtyTableEntries.clear();
    for (const i of indexes) await this.file.write(this.#tableOffset + i * 8, this.#table.subarray(i * 8, i * 8 + 8));
  }

  #setTableEntry(index: number, offset: number): void {
    const [hi, lo] = splitOffset(offset);
    this.#tableView.setUint32(index * 8, hi);
    this.#tableView.setUint32(index * 8 + 4, lo);
  }

  /**
   * Grows the table so that `neededIndex` fits. Everything past the old table's coverage has
   * refcount 0, so the new structures go at the first uncovered cluster R: k new refcount blocks
   * (covering R onwards, counting themselves and the new table), then the new table. Order: blocks
   * and table written, flush, header updated and flushed (onTableMoved), then the old table freed.
   */
  async #growTable(neededIndex: number): Promise<void> {
    const oldEntries = this.tableEntries;
    const oldOffset = this.#tableOffset;
    const oldClusters = this.tableClusters;
    const epb = this.entriesPerBlock;
    const entriesPerCluster = this.clusterSize / 8;
    const start = oldEntries * epb; // first uncovered cluster, range aligned
    let k = 1;
    let tableClusters = 0;
    let newEntries = 0;
    for (let i = 0; i < 64; i++) {
      newEntries = Math.max(neededIndex + 1, oldEntries + k, Math.ceil(oldEntries * 1.5));
      tableClusters = Math.ceil(newEntries / entriesPerCluster);
      newEntries = tableClusters * entriesPerCluster;
      const needK = Math.ceil((k + tableClusters) / epb);
      if (needK <= k) break;
      k = needK;
    }
    if (tableClusters * this.clusterSize > MAX_REFCOUNT_TABLE_BYTES) {
      throw new BlockError('NO_SPACE', `the refcount table would exceed ${MAX_REFCOUNT_TABLE_BYTES} bytes`);
    }
    if ((start + k + tableClusters) * this.clusterSize > MAX_HOST_OFFSET) {
      throw new BlockError('NO_SPACE', 'qcow2 host offsets would pass 2^53');
    }
    const used = k + tableClusters; // clusters start .. start+used-1 get refcount 1
    const newTable = new Uint8Array(tableClusters * this.clusterSize);
    newTable.set(this.#table);
    const newView = new DataView(newTable.buffer);
    const blocks: Uint8Array[] = [];
    for (let j = 0; j < k; j++) {
      const block = new Uint8Array(this.clusterSize);
      const view = new DataView(block.buffer);
      for (let c = 0; c < epb; c++) {
        const cluster = j * epb + c;
        if (cluster >= used) break;
        setRefcountEntry(block, view, c, this.refcountOrder, 1);
      }
      blocks.push(block);
      const [hi, lo] = splitOffset((start + j) * this.clusterSize);
      newView.setUint32((oldEntries + j) * 8, hi);
      newView.setUint32((oldEntries + j) * 8 + 4, lo);
    }
    // The new table carries the entries of blocks not yet written: write those blocks too.
    await this.writeDirty();
    for (let j = 0; j < k; j++) await this.file.write((start + j) * this.clusterSize, blocks[j]!);
    const newOffset = (start + k) * this.clusterSize;
    await this.file.write(newOffset, newTable);
    await this.file.flush();
    await this.#onTableMoved(newOffset, tableClusters);
    this.#table = newTable;
    this.#tableView = newView;
    this.#tableOffset = newOffset;
    this.#dirtyTableEntries.clear();
    for (let j = 0; j < k; j++) this.cache.insertClean((start + j) * this.clusterSize, blocks[j]!);
    // The header no longer points at the old table (flushed by onTableMoved): free it.
    await this.freeRange(oldOffset, oldClusters * this.clusterSize);
  }
}
