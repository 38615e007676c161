/**
 * A bounded LRU cache of one-cluster metadata tables (L2 tables, refcount blocks), sized in bytes.
 *
 * Write-back: a modified table is marked dirty and written by its owner in the order the crash
 * rules need (see qcow2-image.ts). The cache itself never writes: it evicts only clean entries,
 * so it can exceed its budget while dirty entries wait; the owner writes them back at the end of
 * every exclusive metadata operation when over budget. Concurrent loads of one table are
 * coalesced.
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';

/** A cached table: its bytes and a big-endian view over them. */
export interface CachedTable {
  readonly offset: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  dirty: boolean;
}

export class MetadataCache {
  readonly #file: BlockFile;
  readonly #tableSize: number;
  readonly #capacity: number;
  readonly #entries = new Map<number, CachedTable>();
  readonly #loading = new Map<number, Promise<CachedTable>>();
  #dirtyCount = 0;

  /**
   * @param capacityBytes budget in bytes; at least 4 tables are always kept.
   */
  constructor(file: BlockFile, tableSize: number, capacityBytes: number) {
    this.#file = file;
    this.#tableSize = tableSize;
    this.#capacity = Math.max(4, Math.floor(capacityBytes / tableSize));
  }

  /** Number of tables the budget allows. */
  get capacity(): number {
    return this.#capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get dirtyCount(): number {
    return this.#dirtyCount;
  }

  /** True when dirty tables push the cache past its budget (the owner should write back). */
  get overBudget(): boolean {
    return this.#entries.size > this.#capacity && this.#dirtyCount > 0;
  }

  /** True when the table at `offset` is cached. */
  has(offset: number): boolean {
    return this.#entries.has(offset);
  }

  /** The table at `offset` if cached (marked most recently used), else undefined; never loads. */
  peek(offset: number): CachedTable | undefined {
    const hit = this.#entries.get(offset);
    if (hit !== undefined) {
      this.#entries.delete(offset);
      this.#entries.set(offset, hit);
    }
    return hit;
  }

  /** The table at `offset`, loaded from the file on a miss. */
  get(offset: number): Promise<CachedTable> {
    const hit = this.#entries.get(offset);
    if (hit !== undefined) {
      this.#entries.delete(offset);
      this.#entries.set(offset, hit);
      return Promise.resolve(hit);
    }
    let pending = this.#loading.get(offset);
    if (pending === undefined) {
      pending = this.#load(offset);
      this.#loading.set(offset, pending);
    }
    return pending;
  }

  async #load(offset: number): Promise<CachedTable> {
    try {
      const bytes = new Uint8Array(this.#tableSize);
      await this.#file.read(offset, bytes);
      const existing = this.#entries.get(offset);
      if (existing !== undefined) return existing;
      const table: CachedTable = { offset, bytes, view: new DataView(bytes.buffer), dirty: false };
      this.#insert(table);
      return table;
    } finally {
      this.#loading.delete(offset);
    }
  }

  /** Inserts a table created in memory (e.g. a new zeroed L2 table), marked dirty. */
  create(offset: number, bytes: Uint8Array = new Uint8Array(this.#tableSize)): CachedTable {
    if (bytes.length !== this.#tableSize) throw new BlockError('INVALID_ARGUMENT', 'table size mismatch');
    this.drop(offset);
    const table: CachedTable = { offset, bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length), dirty: true };
    this.#dirtyCount++;
    this.#insert(table);
    return table;
  }

  /** Inserts a table already on disk, clean. */
  insertClean(offset: number, bytes: Uint8Array): CachedTable {
    this.drop(offset);
    const table: CachedTable = { offset, bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length), dirty: false };
    this.#insert(table);
    return table;
  }

  /**
   * Marks `table` modified. If it was evicted meanwhile (possible only when its holder awaited
   * other I/O), it is put back, as the newest copy.
   */
  markDirty(table: CachedTable): void {
    if (this.#entries.get(table.offset) !== table) {
      this.drop(table.offset);
      this.#insert(table);
      if (table.dirty) this.#dirtyCount++;
    }
    if (!table.dirty) {
      table.dirty = true;
      this.#dirtyCount++;
    }
  }

  /** Dirty tables, oldest first. */
  dirtyTables(): CachedTable[] {
    const out: CachedTable[] = [];
    for (const table of this.#entries.values()) if (table.dirty) out.push(table);
    return out;
  }

  /** Writes one dirty table to the file and marks it clean (the caller has ordered it). */
  async writeBack(table: CachedTable): Promise<void> {
    if (!table.dirty) return;
    await this.#file.write(table.offset, table.bytes);
    if (table.dirty) {
      table.dirty = false;
      if (this.#entries.get(table.offset) === table) this.#dirtyCount--;
    }
    this.#evict();
  }

  /** Forgets a table (its cluster was freed). A dirty table is dropped without writing. */
  drop(offset: number): void {
    const table = this.#entries.get(offset);
    if (table === undefined) return;
    if (table.dirty) this.#dirtyCount--;
    this.#entries.delete(offset);
  }

  /** Drops every clean table. */
  clear(): void {
    for (const [offset, table] of this.#entries) if (!table.dirty) this.#entries.delete(offset);
  }

  #insert(table: CachedTable): void {
    this.#entries.set(table.offset, table);
    this.#evict();
  }

  #evict(): void {
    if (this.#entries.size <= this.#capacity) return;
    for (const [offset, table] of this.#entries) {
      if (this.#entries.size <= this.#capacity) return;
      if (!table.dirty) this.#entries.delete(offset);
    }
  }
}
