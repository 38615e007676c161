/**
 * The qcow2 {@link BlockDriver}: guest reads and writes over a {@link Qcow2Image}.
 *
 * Concurrency (as QEMU's qcow2: allocate under a short metadata lock, write the data outside it):
 * reads and writes hold the image lock *shared*. A write whose clusters are all allocated with
 * refcount 1 (and, with extended L2, whose subclusters are allocated) goes straight to the file.
 * Any other write plans under the image's metadata mutex — allocates the host clusters it needs
 * (refcounts raised in the cache) and marks its guest clusters in flight — then writes its data
 * and copy-on-write bytes with no lock but the shared one, then links the new L2 entries under the
 * mutex again. A write that meets an in-flight cluster waits for that write and plans again, so
 * two racing writes to one new cluster allocate it once and the second sees the first's data when
 * it copies the rest of the cluster. Zeroing, discard, compressed writes and resize run under the
 * image lock *exclusive* (they wait for every in-flight write). Crash order is unchanged: an L2
 * entry changes only after its data write completed, and reaches the disk only through
 * flushMetadata (refcounts, flush, L2, flush, L1). A newly allocated cluster past the end of the
 * file reads as zeroes until written, so copy-on-write of zeroes into it writes nothing.
 */
import type { BlockDriver, BlockDriverInfo, BlockFile, BlockStatus } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { checkOpen, checkRequest } from '../request-check.js';
import { COMPAT_LAZY_REFCOUNTS, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, MAX_L1_BYTES } from './constants.js';
import { backingFormatOf } from './header.js';
import type { L2Entry } from './l2-entry.js';
import { Qcow2Image, type Qcow2OpenOptions } from './qcow2-image.js';
import type { CachedTable } from './cache.js';

const ALL_SUBCLUSTERS = 0xffffffff;
/** Longest run of fresh clusters allocated and written at once (bounds one host write). */
const MAX_RUN_CLUSTERS = 1024;

/** One cluster of an allocating write, as planned under the metadata mutex. */
interface PlannedPiece {
  readonly clusterIndex: number;
  readonly l1Index: number;
  /** Where the guest data starts in the cluster, and its length. */
  readonly inCluster: number;
  readonly length: number;
  /** Where the data starts in the request buffer. */
  readonly pos: number;
  /** Host cluster offset. */
  host: number;
  /** The bytes [start, end) of the cluster are written; around the data they come from `fill`. */
  start: number;
  end: number;
  fill: 'none' | 'zero' | 'read';
  /** The L2 entry when planned, and the entry to link once the data is written (none: in place). */
  readonly old: L2Entry;
  link: L2Entry | undefined;
  /** Whether the old entry's storage is released when linking. */
  release: boolean;
  /** Whether `host` was allocated for this write. */
  allocated: boolean;
}

interface WritePlan {
  readonly pieces: PlannedPiece[];
  /** Pieces with an L2 entry to link (the write's in-flight clusters). */
  readonly linked: PlannedPiece[];
  done: () => void;
}

/** A bit mask of subclusters first..last (0..31). */
function subclusterMask(first: number, last: number): number {
  const width = last - first + 1;
  return width === 32 ? ALL_SUBCLUSTERS : (((1 << width) - 1) << first) >>> 0;
}

/**
 * A qcow2 image as a {@link BlockDriver}.
 *
 * @example
 * const file = new MemoryFile();
 * await createQcow2(file, { size: 1 << 20 });
 * const disk = await Qcow2Driver.open(file);
 * await disk.write(0, new Uint8Array(512).fill(7));
 * await disk.flush();
 * await disk.close();
 */
export class Qcow2Driver implements BlockDriver {
  readonly specificationVersion = 'v1' as const;
  readonly requestAlignment = 1;
  /** The image state; for qcow2 tools (snapshots, check) in this package. */
  readonly image: Qcow2Image;
  #closed = false;
  readonly #zeroes: Uint8Array;

  private constructor(image: Qcow2Image) {
    this.image = image;
    this.#zeroes = new Uint8Array(image.clusterSize);
  }

  /** Opens a qcow2 image over `file` (and its backing file, through `options.openBacking`). */
  static async open(file: BlockFile, options: Qcow2OpenOptions = {}): Promise<Qcow2Driver> {
    const image = await Qcow2Image.open(file, options);
    const name = image.header.backingFile;
    if (name !== undefined && options.ignoreBacking !== true) {
      if (options.openBacking === undefined) {
        throw new BlockError('INVALID_ARGUMENT', `the image has a backing file '${name}' but backing files are not allowed here`, {
          op: 'open',
          ...(options.path === undefined ? {} : { path: options.path }),
        });
      }
      image.backing = await options.openBacking(name, backingFormatOf(image.header));
    }
    return new Qcow2Driver(image);
  }

  get length(): number {
    return this.image.size;
  }

  get readOnly(): boolean {
    return this.image.readOnly;
  }

  // ---- read ----------------------------------------------------------------------------------

  async read(offset: number, buffer: Uint8Array): Promise<void> {
    checkOpen(this.#closed, 'read');
    checkRequest('read', offset, buffer.length, this.image.size, 1);
    const image = this.image;
    await image.lock.shared(() => {
      // Hot path: the request lies in one plain allocated cluster whose L2 table is cached.
      const cs = image.clusterSize;
      const clusterIndex = Math.floor(offset / cs);
      const inCluster = offset - clusterIndex * cs;
      if (inCluster + buffer.length <= cs) {
        const host = image.plainHostCluster(clusterIndex, false);
        if (host > 0) return image.file.read(host + inCluster, buffer);
      }
      return this.#readRange(offset, buffer);
    });
  }

  /** Reads guest bytes (any range, also past the virtual size) without taking the lock. */
  async #readRange(offset: number, buffer: Uint8Array): Promise<void> {
    const image = this.image;
    const cs = image.clusterSize;
    const ops: Promise<void>[] = [];
    // Coalesce host reads that are contiguous in both the file and the buffer.
    let runHost = -1;
    let runPos = 0;
    let runLength = 0;
    const flushRun = (): void => {
      if (runLength > 0) ops.push(image.file.read(runHost, buffer.subarray(runPos, runPos + runLength)));
      runLength = 0;
    };
    const host = (hostOffset: number, pos: number, length: number): void => {
      if (runLength > 0 && runHost + runLength === hostOffset && runPos + runLength === pos) {
        runLength += length;
        return;
      }
      flushRun();
      runHost = hostOffset;
      runPos = pos;
      runLength = length;
    };
    // Coalesce consecutive pieces that fall through to the backing file into one backing read.
    let backPos = 0;
    let backLength = 0;
    const flushBack = (): void => {
      if (backLength > 0) ops.push(this.#readBacking(offset + backPos, buffer.subarray(backPos, backPos + backLength)));
      backLength = 0;
    };
    const back = (pos: number, length: number): void => {
      if (backLength > 0 && backPos + backLength === pos) {
        backLength += length;
        return;
      }
      flushBack();
      backPos = pos;
      backLength = length;
    };
    let pos = 0;
    while (pos < buffer.length) {
      const guest = offset + pos;
      const clusterIndex = Math.floor(guest / cs);
      const inCluster = guest - clusterIndex * cs;
      const n = Math.min(cs - inCluster, buffer.length - pos);
      const entry = await this.#entryAt(clusterIndex);
      if (entry === undefined || entry.kind === 'unallocated') {
        if (image.extendedL2 && entry !== undefined && entry.zeroBitmap !== 0) {
          this.#readSubclusters(entry, inCluster, buffer.subarray(pos, pos + n), pos, host, back);
        } else {
          back(pos, n);
        }
      } else if (entry.kind === 'zero-plain' || entry.kind === 'zero-alloc') {
        buffer.fill(0, pos, pos + n);
      } else if (entry.kind === 'compressed') {
        ops.push(this.#readCompressed(entry, inCluster, buffer.subarray(pos, pos + n)));
      } else if (image.extendedL2 && entry.allocBitmap !== ALL_SUBCLUSTERS) {
        this.#readSubclusters(entry, inCluster, buffer.subarray(pos, pos + n), pos, host, back);
      } else {
        host(entry.offset + inCluster, pos, n);
      }
      pos += n;
    }
    flushRun();
    flushBack();
    await Promise.all(ops);
  }

  /** Extended L2: each run of subclusters with one status reads from the host, zero or backing. */
  #readSubclusters(
    entry: L2Entry,
    inCluster: number,
    out: Uint8Array,
    basePos: number,
    host: (hostOffset: number, pos: number, length: number) => void,
    back: (pos: number, length: number) => void,
  ): void {
    const scs = this.image.subclusterSize;
    let done = 0;
    while (done < out.length) {
      const sc = Math.floor((inCluster + done) / scs);
      const bit = 1 << sc;
      const status = (entry.allocBitmap & bit) !== 0 ? 1 : (entry.zeroBitmap & bit) !== 0 ? 2 : 0;
      let end = (sc + 1) * scs - inCluster;
      // extend over following subclusters with the same status
      for (let next = sc + 1; next < 32 && end < out.length; next++) {
        const b = 1 << next;
        const s = (entry.allocBitmap & b) !== 0 ? 1 : (entry.zeroBitmap & b) !== 0 ? 2 : 0;
        if (s !== status) break;
        end = (next + 1) * scs - inCluster;
      }
      end = Math.min(end, out.length);
      const piece = out.subarray(done, end);
      if (status === 1) host(entry.offset + inCluster + done, basePos + done, end - done);
      else if (status === 2) piece.fill(0);
      else back(basePos + done, end - done);
      done = end;
    }
  }

  async #readBacking(guest: number, out: Uint8Array): Promise<void> {
    const backing = this.image.backing;
    if (backing === undefined || guest >= backing.length) {
      out.fill(0);
      return;
    }
    const n = Math.min(out.length, backing.length - guest);
    await backing.read(guest, out.subarray(0, n));
    if (n < out.length) out.fill(0, n);
  }

  async #readCompressed(entry: L2Entry, inCluster: number, out: Uint8Array): Promise<void> {
    const cluster = await this.#decompress(entry);
    out.set(cluster.subarray(inCluster, inCluster + out.length));
  }

  async #decompress(entry: L2Entry): Promise<Uint8Array> {
    const image = this.image;
    const codec = image.codec();
    const input = new Uint8Array(entry.compressedSize);
    await image.file.read(entry.offset, input);
    const cluster = codec.decompress(input, image.clusterSize);
    if (cluster.length !== image.clusterSize) {
      throw image.signalCorruption(`compressed cluster at 0x${entry.offset.toString(16)} decompressed to ${cluster.length} bytes`);
    }
    return cluster;
  }

  /** The L2 entry of guest cluster `clusterIndex`, or undefined when its L2 table is unallocated. */
  async #entryAt(clusterIndex: number): Promise<L2Entry | undefined> {
    const image = this.image;
    const l1Index = Math.floor(clusterIndex / image.l2Entries);
    const l1 = image.l1Entry(l1Index);
    if (l1.offset === 0) return undefined;
    const table = await image.readL2(l1.offset);
    return image.l2Entry(table, clusterIndex % image.l2Entries);
  }

  // ---- write ---------------------------------------------------------------------------------

  async write(offset: number, buffer: Uint8Array): Promise<void> {
    checkOpen(this.#closed, 'write');
    checkRequest('write', offset, buffer.length, this.image.size, 1);
    this.image.checkWritable('write');
    if (buffer.length === 0) return;
    const image = this.image;
    await image.lock.shared(async () => {
      // Fast path: every cluster already allocated and owned (refcount 1): no metadata changes.
      const hosts = await this.#inPlaceHosts(offset, buffer.length);
      if (hosts !== undefined) {
        await this.#writeHosts(hosts, buffer);
        return;
      }
      for (;;) {
        const plan = await image.metadataMutex.run(() => this.#planWrite(offset, buffer.length));
        if ('wait' in plan) {
          // Another write is allocating one of our clusters: wait for it, then look again.
          await plan.wait;
          continue;
        }
        try {
          await this.#writePlanned(plan, buffer);
        } catch (error) {
          await image.metadataMutex.run(() => this.#abortPlan(plan));
          throw error;
        }
        await image.metadataMutex.run(() => this.#commitPlan(plan));
        return;
      }
    });
    if (image.needsMaintenance) await image.lock.exclusive(() => image.afterMetadataOperation());
  }

  /** The end of the furthest host write a planned write issued (see #planWrite). */
  #attemptedEnd = 0;

  /** Guest clusters whose allocation is in flight (planned, data being written, not yet linked). */
  readonly #inflight = new Map<number, Promise<void>>();

  /**
   * Plans an allocating write: allocates the host clusters it needs (refcounts raised in the
   * cache) and registers its clusters as in flight, or returns (as `wait`) the promise of an
   * in-flight allocation of one of them. Holds `lock` shared and the metadata mutex.
   */
  async #planWrite(offset: number, length: number): Promise<WritePlan | { readonly wait: Promise<void> }> {
    const image = this.image;
    const cs = image.clusterSize;
    const firstCluster = Math.floor(offset / cs);
    const lastCluster = Math.floor((offset + length - 1) / cs);
    for (let c = firstCluster; c <= lastCluster; c++) {
      const pending = this.#inflight.get(c);
      if (pending !== undefined) return { wait: pending };
    }
    image.checkWritable('write');
    const backing = image.backing;
    const pieces: PlannedPiece[] = [];
    let fresh = 0;
    let pos = 0;
    while (pos < length) {
      const guest = offset + pos;
      const clusterIndex = Math.floor(guest / cs);
      const inCluster = guest - clusterIndex * cs;
      const n = Math.min(cs - inCluster, length - pos);
      const l1Index = Math.floor(clusterIndex / image.l2Entries);
      const l1 = image.l1Entry(l1Index);
      let entry: L2Entry;
      if (l1.offset !== 0 && l1.copied) {
        entry = image.l2Entry(await image.readL2(l1.offset), clusterIndex % image.l2Entries);
      } else {
        await image.markDirtyIfLazy();
        entry = image.l2Entry(await this.#l2ForWrite(l1Index), clusterIndex % image.l2Entries);
      }
      const piece: PlannedPiece = { clusterIndex, l1Index, inCluster, pos, length: n, host: 0, start: inCluster, end: inCluster + n, fill: 'none', old: entry, link: undefined, release: false, allocated: false };
      if (!image.extendedL2) {
        if (entry.kind === 'normal' && entry.copied) {
          piece.host = entry.offset;
        } else if (entry.kind === 'zero-alloc' && entry.copied) {
          // Preallocated zero cluster: reuse its host cluster, zeroes around the data.
          piece.host = entry.offset;
          piece.link = { ...entry, kind: 'normal' };
          this.#widen(piece, 0, cs, 'zero');
        } else {
          piece.allocated = true;
          piece.release = true;
          piece.link = { kind: 'normal', offset: 0, copied: true, compressedSize: 0, allocBitmap: 0, zeroBitmap: 0 };
          const zeroSource = entry.kind === 'zero-plain' || entry.kind === 'zero-alloc' || (entry.kind === 'unallocated' && (backing === undefined || clusterIndex * cs >= backing.length));
          this.#widen(piece, 0, cs, zeroSource ? 'zero' : 'read');
          fresh++;
        }
      } else {
        const scs = image.subclusterSize;
        const first = Math.floor(inCluster / scs);
        const last = Math.floor((inCluster + n - 1) / scs);
        const mask = subclusterMask(first, last);
        if (entry.kind === 'normal' && entry.copied) {
          piece.host = entry.offset;
          if ((entry.allocBitmap & mask) !== mask) {
            piece.link = { ...entry, allocBitmap: (entry.allocBitmap | mask) >>> 0, zeroBitmap: (entry.zeroBitmap & ~mask) >>> 0 };
            // Copy-on-write only into subclusters not yet allocated: an allocated edge subcluster
            // is written in place (a concurrent in-place write to its other bytes must survive).
            const start = (entry.allocBitmap & (1 << first)) !== 0 ? inCluster : first * scs;
            const end = (entry.allocBitmap & (1 << last)) !== 0 ? inCluster + n : (last + 1) * scs;
            this.#widen(piece, start, end, 'read');
          }
        } else if (entry.kind === 'unallocated') {
          piece.allocated = true;
          piece.link = { kind: 'normal', offset: 0, copied: true, compressedSize: 0, allocBitmap: mask, zeroBitmap: (entry.zeroBitmap & ~mask) >>> 0 };
          this.#widen(piece, first * scs, (last + 1) * scs, 'read');
          fresh++;
        } else {
          // Compressed or shared: copy the whole cluster.
          piece.allocated = true;
          piece.release = true;
          piece.link = { kind: 'normal', offset: 0, copied: true, compressedSize: 0, allocBitmap: ALL_SUBCLUSTERS, zeroBitmap: 0 };
          this.#widen(piece, 0, cs, 'read');
          fresh++;
        }
      }
      pieces.push(piece);
      pos += n;
    }
    if (fresh > 0) {
      const run = await image.allocateClusters(fresh);
      // Clusters past the end of the file read as zeroes (BlockFile contract) until written: a
      // copy-on-write of zeroes into them needs no write at all. (A failed write may have left
      // bytes past the end before its clusters were freed: nothing it tried to write counts.)
      const unwritten = Math.ceil(Math.max(image.file.length, this.#attemptedEnd) / cs) * cs;
      let k = 0;
      for (const piece of pieces) {
        if (!piece.allocated) continue;
        piece.host = run + k * cs;
        piece.link!.offset = piece.host;
        k++;
        if (piece.fill === 'zero' && piece.host >= unwritten) {
          piece.start = piece.inCluster;
          piece.end = piece.inCluster + piece.length;
          piece.fill = 'none';
        }
      }
    }
    if (pieces.some((piece) => piece.link !== undefined)) await image.markDirtyIfLazy();
    // Nothing below awaits: once registered, the plan is always ended (commit or abort).
    const plan: WritePlan = { pieces, linked: [], done: () => undefined };
    const done = new Promise<void>((resolve) => (plan.done = resolve));
    for (const piece of pieces) {
      if (piece.link === undefined) continue;
      plan.linked.push(piece);
      this.#inflight.set(piece.clusterIndex, done);
    }
    return plan;
  }

  /** Widens what a piece writes to [start, end) of its cluster, the rest filled by `fill`. */
  #widen(piece: PlannedPiece, start: number, end: number, fill: 'zero' | 'read'): void {
    if (start === piece.inCluster && end === piece.inCluster + piece.length) return;
    piece.start = start;
    piece.end = end;
    piece.fill = fill;
  }

  /** Writes the data (and copy-on-write bytes) of a plan. Holds `lock` shared only. */
  async #writePlanned(plan: WritePlan, buffer: Uint8Array): Promise<void> {
    const image = this.image;
    const cs = image.clusterSize;
    const writes: { host: number; bytes: Uint8Array }[] = [];
    const reads: Promise<void>[] = [];
    for (const piece of plan.pieces) {
      const data = buffer.subarray(piece.pos, piece.pos + piece.length);
      let bytes = data;
      if (piece.fill !== 'none') {
        bytes = new Uint8Array(piece.end - piece.start);
        const head = piece.inCluster - piece.start;
        bytes.set(data, head);
        if (piece.fill === 'read') {
          // Copy-on-write source: the cluster's current contents (backing, zero, old data); no
          // other write can change them while the cluster is in flight.
          const guestStart = piece.clusterIndex * cs;
          if (head > 0) reads.push(this.#readRange(guestStart + piece.start, bytes.subarray(0, head)));
          const tail = head + piece.length;
          if (tail < bytes.length) reads.push(this.#readRange(guestStart + piece.inCluster + piece.length, bytes.subarray(tail)));
        }
      }
      const host = piece.host + piece.start;
      image.checkDataOverlap(host, bytes.length);
      const last = writes[writes.length - 1];
      if (last !== undefined && last.host + last.bytes.length === host && last.bytes.buffer === bytes.buffer && last.bytes.byteOffset + last.bytes.length === bytes.byteOffset) {
        last.bytes = new Uint8Array(bytes.buffer, last.bytes.byteOffset, last.bytes.length + bytes.length);
      } else {
        writes.push({ host, bytes });
      }
    }
    if (reads.length > 0) await Promise.all(reads);
    for (const w of writes) this.#attemptedEnd = Math.max(this.#attemptedEnd, w.host + w.bytes.length);
    // Every write settles before a failure is reported: the caller then frees the clusters, and
    // no write of ours may still be landing in them.
    const results = await Promise.allSettled(writes.map((w) => image.file.write(w.host, w.bytes)));
    for (const result of results) if (result.status === 'rejected') throw result.reason;
  }

  /** Links the written clusters into their L2 tables and ends their in-flight state. Metadata mutex. */
  async #commitPlan(plan: WritePlan): Promise<void> {
    const image = this.image;
    try {
      for (const piece of plan.linked) {
        // Look the table up again: the cached copy seen when planning may have been evicted since.
        const table = await image.readL2(image.l1Entry(piece.l1Index).offset);
        image.writeL2Entry(table, piece.clusterIndex % image.l2Entries, piece.link!);
        if (piece.release) this.#releaseStorage(piece.old);
      }
    } finally {
      this.#endPlan(plan);
    }
  }

  /** A failed write: frees the clusters it allocated (nothing points at them) and ends it. Metadata mutex. */
  async #abortPlan(plan: WritePlan): Promise<void> {
    try {
      for (const piece of plan.pieces) if (piece.allocated) await this.image.freeClusters(piece.host, this.image.clusterSize);
    } finally {
      this.#endPlan(plan);
    }
  }

  #endPlan(plan: WritePlan): void {
    for (const piece of plan.linked) this.#inflight.delete(piece.clusterIndex);
    plan.done();
  }

  /** Host offsets per cluster piece if the whole range can be written in place, else undefined. */
  async #inPlaceHosts(offset: number, length: number): Promise<number[] | undefined> {
    const image = this.image;
    const cs = image.clusterSize;
    const hosts: number[] = [];
    let pos = 0;
    while (pos < length) {
      const guest = offset + pos;
      const clusterIndex = Math.floor(guest / cs);
      const inCluster = guest - clusterIndex * cs;
      const n = Math.min(cs - inCluster, length - pos);
      const plain = image.plainHostCluster(clusterIndex, true);
      if (plain > 0) {
        hosts.push(plain + inCluster);
        pos += n;
        continue;
      }
      const entry = await this.#entryAt(clusterIndex);
      if (entry === undefined || entry.kind !== 'normal' || !entry.copied) return undefined;
      if (image.extendedL2) {
        const scs = image.subclusterSize;
        const mask = subclusterMask(Math.floor(inCluster / scs), Math.floor((inCluster + n - 1) / scs));
        if ((entry.allocBitmap & mask) !== mask) return undefined;
      }
      hosts.push(entry.offset + inCluster);
      pos += n;
    }
    return hosts;
  }

  async #writeHosts(hosts: number[], buffer: Uint8Array): Promise<void> {
    const image = this.image;
    const cs = image.clusterSize;
    const ops: Promise<void>[] = [];
    let pos = 0;
    let runHost = -1;
    let runPos = 0;
    let runLength = 0;
    for (const hostOffset of hosts) {
      const n = Math.min(cs - (hostOffset % cs), buffer.length - pos);
      image.checkDataOverlap(hostOffset, n);
      if (runLength > 0 && runHost + runLength === hostOffset) {
        runLength += n;
      } else {
        if (runLength > 0) ops.push(image.file.write(runHost, buffer.subarray(runPos, runPos + runLength)));
        runHost = hostOffset;
        runPos = pos;
        runLength = n;
      }
      pos += n;
    }
    if (runLength > 0) ops.push(image.file.write(runHost, buffer.subarray(runPos, runPos + runLength)));
    await Promise.all(ops);
  }

  /** Writes a range, allocating and copying as needed. Exclusive lock. */
  async #writeLocked(offset: number, buffer: Uint8Array): Promise<void> {
    const cs = this.image.clusterSize;
    let pos = 0;
    while (pos < buffer.length) {
      const guest = offset + pos;
      const clusterIndex = Math.floor(guest / cs);
      const inCluster = guest - clusterIndex * cs;
      const n = Math.min(cs - inCluster, buffer.length - pos);
      if (inCluster === 0 && buffer.length - pos >= 2 * cs) {
        const done = await this.#writeFreshRun(clusterIndex, buffer.subarray(pos, pos + Math.min(buffer.length - pos, MAX_RUN_CLUSTERS * cs)));
        if (done > 0) {
          pos += done;
          continue;
        }
      }
      await this.#writeCluster(clusterIndex, inCluster, buffer.subarray(pos, pos + n));
      pos += n;
    }
  }

  /**
   * Whole clusters that hold no data yet (unallocated, or plain zero) are allocated as one
   * contiguous run and written with one host write. Returns the bytes written (0 when fewer than
   * two such clusters start here). Exclusive lock.
   */
  async #writeFreshRun(clusterIndex: number, data: Uint8Array): Promise<number> {
    const image = this.image;
    const cs = image.clusterSize;
    const slots: { table: CachedTable; index: number }[] = [];
    const whole = Math.floor(data.length / cs);
    for (let k = 0; k < whole; k++) {
      const c = clusterIndex + k;
      const table = await this.#l2ForWrite(Math.floor(c / image.l2Entries));
      const index = c % image.l2Entries;
      const entry = image.l2Entry(table, index);
      if (entry.offset !== 0 || entry.kind === 'compressed') break;
      slots.push({ table, index });
    }
    if (slots.length < 2) return 0;
    await image.markDirtyIfLazy();
    const hostOffset = await image.allocateClusters(slots.length);
    await this.#dataWrite(hostOffset, data.subarray(0, slots.length * cs));
    slots.forEach(({ table, index }, k) => {
      image.writeL2Entry(table, index, {
        kind: 'normal',
        offset: hostOffset + k * cs,
        copied: true,
        compressedSize: 0,
        allocBitmap: image.extendedL2 ? ALL_SUBCLUSTERS : 0,
        zeroBitmap: 0,
      });
    });
    return slots.length * cs;
  }

  async #dataWrite(hostOffset: number, data: Uint8Array): Promise<void> {
    this.image.checkDataOverlap(hostOffset, data.length);
    await this.image.file.write(hostOffset, data);
  }

  /** Frees (later) whatever host storage `entry` holds. */
  #releaseStorage(entry: L2Entry): void {
    if (entry.kind === 'compressed') this.image.freeClustersLater(entry.offset, entry.compressedSize);
    else if (entry.offset !== 0) this.image.freeClustersLater(entry.offset, this.image.clusterSize);
  }

  /** The L2 table for `l1Index`, allocated (or copied when shared) for writing. Exclusive lock. */
  async #l2ForWrite(l1Index: number): Promise<CachedTable> {
    const image = this.image;
    const l1 = image.l1Entry(l1Index);
    if (l1.offset === 0) {
      const offset = await image.allocateClusters(1);
      const table = image.l2Cache.create(offset);
      image.setL1Entry(l1Index, { offset, copied: true });
      return table;
    }
    const table = await image.readL2(l1.offset);
    if (l1.copied) return table;
    // Shared L2 table (an internal snapshot references it): copy on write.
    const offset = await image.allocateClusters(1);
    const copy = image.l2Cache.create(offset, table.bytes.slice());
    image.setL1Entry(l1Index, { offset, copied: true });
    image.freeClustersLater(l1.offset, image.clusterSize);
    return copy;
  }

  /** Writes `data` at `inCluster` of guest cluster `clusterIndex`. Exclusive lock. */
  async #writeCluster(clusterIndex: number, inCluster: number, data: Uint8Array): Promise<void> {
    const image = this.image;
    const cs = image.clusterSize;
    await image.markDirtyIfLazy();
    const table = await this.#l2ForWrite(Math.floor(clusterIndex / image.l2Entries));
    const index = clusterIndex % image.l2Entries;
    const entry = image.l2Entry(table, index);
    const guestStart = clusterIndex * cs;
    if (!image.extendedL2) {
      if (entry.kind === 'normal' && entry.copied) {
        await this.#dataWrite(entry.offset + inCluster, data);
        return;
      }
      if (entry.kind === 'zero-alloc' && entry.copied) {
        // Preallocated zero cluster: reuse its host cluster, zeroes around the data.
        const full = new Uint8Array(cs);
        full.set(data, inCluster);
        await this.#dataWrite(entry.offset, full);
        image.writeL2Entry(table, index, { ...entry, kind: 'normal' });
        return;
      }
      let full: Uint8Array;
      if (inCluster === 0 && data.length === cs) {
        full = data;
      } else {
        full = new Uint8Array(cs);
        await this.#readRange(guestStart, full); // copy-on-write source: backing, zero, old data
        full.set(data, inCluster);
      }
      const hostOffset = await image.allocateClusters(1);
      await this.#dataWrite(hostOffset, full);
      image.writeL2Entry(table, index, { kind: 'normal', offset: hostOffset, copied: true, compressedSize: 0, allocBitmap: 0, zeroBitmap: 0 });
      this.#releaseStorage(entry);
      return;
    }
    // Extended L2 entries: subcluster granularity.
    const scs = image.subclusterSize;
    const first = Math.floor(inCluster / scs);
    const last = Math.floor((inCluster + data.length - 1) / scs);
    const mask = subclusterMask(first, last);
    const start = first * scs;
    const end = (last + 1) * scs;
    const span = async (): Promise<Uint8Array> => {
      if (start === inCluster && end === inCluster + data.length) return data;
      const buf = new Uint8Array(end - start);
      await this.#readRange(guestStart + start, buf);
      buf.set(data, inCluster - start);
      return buf;
    };
    if (entry.kind === 'normal' && entry.copied) {
      if ((entry.allocBitmap & mask) === mask) {
        await this.#dataWrite(entry.offset + inCluster, data);
        return;
      }
      await this.#dataWrite(entry.offset + start, await span());
      image.writeL2Entry(table, index, { ...entry, allocBitmap: (entry.allocBitmap | mask) >>> 0, zeroBitmap: (entry.zeroBitmap & ~mask) >>> 0 });
      return;
    }
    if (entry.kind === 'unallocated') {
      const bytes = await span();
      const hostOffset = await image.allocateClusters(1);
      await this.#dataWrite(hostOffset + start, bytes);
      image.writeL2Entry(table, index, {
        kind: 'normal',
        offset: hostOffset,
        copied: true,
        compressedSize: 0,
        allocBitmap: mask,
        zeroBitmap: (entry.zeroBitmap & ~mask) >>> 0,
      });
      return;
    }
    // Compressed or shared: copy the whole cluster.
    const full = new Uint8Array(cs);
    await this.#readRange(guestStart, full);
    full.set(data, inCluster);
    const hostOffset = await image.allocateClusters(1);
    await this.#dataWrite(hostOffset, full);
    image.writeL2Entry(table, index, { kind: 'normal', offset: hostOffset, copied: true, compressedSize: 0, allocBitmap: ALL_SUBCLUSTERS, zeroBitmap: 0 });
    this.#releaseStorage(entry);
  }

  // ---- compressed writes ---------------------------------------------------------------------

  #freeByteOffset = 0;

  /**
   * Writes one guest cluster compressed (`vimg convert -c`). `offset` must be cluster aligned and
   * `cluster` a whole cluster (or the tail up to the virtual size). When the codec cannot shrink
   * it, the cluster is written uncompressed. Compressed clusters are packed byte-wise into host
   * clusters, each host cluster's refcount counting the compressed clusters in it (as QEMU does).
   */
  async writeCompressed(offset: number, cluster: Uint8Array): Promise<void> {
    checkOpen(this.#closed, 'writeCompressed');
    const image = this.image;
    const cs = image.clusterSize;
    checkRequest('writeCompressed', offset, cluster.length, image.size, 1);
    if (offset % cs !== 0 || (cluster.length !== cs && offset + cluster.length !== image.size)) {
      throw new BlockError('INVALID_ARGUMENT', 'compressed writes take one whole cluster', { op: 'writeCompressed', offset });
    }
    image.checkWritable('writeCompressed');
    const codec = image.codec();
    let full = cluster;
    if (cluster.length !== cs) {
      full = new Uint8Array(cs);
      full.set(cluster);
    }
    const compressed = codec.compress(full);
    await image.lock.exclusive(async () => {
      image.checkWritable('writeCompressed');
      if (compressed === null || compressed.length >= cs) {
        await this.#writeLocked(offset, cluster);
      } else {
        await image.markDirtyIfLazy();
        const clusterIndex = offset / cs;
        const table = await this.#l2ForWrite(Math.floor(clusterIndex / image.l2Entries));
        const index = clusterIndex % image.l2Entries;
        const old = image.l2Entry(table, index);
        const hostOffset = await this.#allocateBytes(compressed.length);
        await this.#dataWrite(hostOffset, compressed);
        image.writeL2Entry(table, index, {
          kind: 'compressed',
          offset: hostOffset,
          copied: false,
          compressedSize: compressed.length,
          allocBitmap: 0,
          zeroBitmap: 0,
        });
        this.#releaseStorage(old);
      }
      await image.afterMetadataOperation();
    });
  }

  /** Byte-granular allocation for compressed data (QEMU's qcow2_alloc_bytes, simplified). */
  async #allocateBytes(size: number): Promise<number> {
    const image = this.image;
    const cs = image.clusterSize;
    const free = this.#freeByteOffset;
    if (free !== 0 && free % cs !== 0) {
      const cluster = Math.floor(free / cs);
      const refcount = await image.getRefcount(cluster);
      // Pack only into a live cluster whose refcount can count one more (not with 1-bit refcounts).
      if (free + size <= (cluster + 1) * cs && refcount > 0 && refcount < image.refcounts.maxRefcount) {
        await image.updateRefcount(cluster, 1);
        this.#freeByteOffset = free + size;
        return free;
      }
    }
    const offset = await image.allocateClusters(Math.ceil(size / cs));
    this.#freeByteOffset = offset + size;
    return offset;
  }

  // ---- zeroes, discard -----------------------------------------------------------------------

  async writeZeroes(offset: number, length: number, options: { mayUnmap?: boolean } = {}): Promise<void> {
    await this.#zeroOrDiscard('writeZeroes', offset, length, options.mayUnmap === true);
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.#zeroOrDiscard('discard', offset, length, true);
  }

  async #zeroOrDiscard(op: 'writeZeroes' | 'discard', offset: number, length: number, mayUnmap: boolean): Promise<void> {
    checkOpen(this.#closed, op);
    const image = this.image;
    checkRequest(op, offset, length, image.size, 1);
    image.checkWritable(op);
    if (length === 0) return;
    const cs = image.clusterSize;
    await image.lock.exclusive(async () => {
      image.checkWritable(op);
      let pos = 0;
      while (pos < length) {
        const guest = offset + pos;
        const clusterIndex = Math.floor(guest / cs);
        const inCluster = guest - clusterIndex * cs;
        const n = Math.min(cs - inCluster, length - pos);
        const whole = inCluster === 0 && (n === cs || guest + n === image.size);
        if (whole) await this.#zeroCluster(clusterIndex, op === 'discard', mayUnmap);
        else if (op === 'writeZeroes') await this.#writeCluster(clusterIndex, inCluster, this.#zeroes.subarray(0, n));
        pos += n;
      }
      await image.afterMetadataOperation();
    });
  }

  /** Makes a whole cluster read as zeroes (or, for discard, unspecified). Exclusive lock. */
  async #zeroCluster(clusterIndex: number, discard: boolean, mayUnmap: boolean): Promise<void> {
    const image = this.image;
    const hasBacking = image.backing !== undefined;
    const l1Index = Math.floor(clusterIndex / image.l2Entries);
    // Without a backing file an unallocated L2 table already reads as zeroes. With one, discard
    // too makes the range read as zeroes (v3), as QEMU does.
    if (image.l1Entry(l1Index).offset === 0 && !hasBacking) return;
    if (!image.l2Format.zeroFlag && !image.extendedL2 && hasBacking && !discard) {
      // v2 has no zero flag: with a backing file the zeroes must be written.
      await this.#writeCluster(clusterIndex, 0, this.#zeroes);
      return;
    }
    const table = await this.#l2ForWrite(l1Index);
    const index = clusterIndex % image.l2Entries;
    const entry = image.l2Entry(table, index);
    let next: L2Entry;
    const keep = !discard && !mayUnmap && entry.kind !== 'compressed' && entry.offset !== 0 && entry.copied;
    if (image.extendedL2) {
      const zeroBitmap = discard && !hasBacking ? 0 : ALL_SUBCLUSTERS;
      next = keep
        ? { ...entry, kind: 'normal', allocBitmap: 0, zeroBitmap }
        : { kind: 'unallocated', offset: 0, copied: false, compressedSize: 0, allocBitmap: 0, zeroBitmap };
    } else if (image.l2Format.zeroFlag) {
      if (discard && !hasBacking) next = { kind: 'unallocated', offset: 0, copied: false, compressedSize: 0, allocBitmap: 0, zeroBitmap: 0 };
      else if (keep) next = { ...entry, kind: 'zero-alloc' };
      else next = { kind: 'zero-plain', offset: 0, copied: false, compressedSize: 0, allocBitmap: 0, zeroBitmap: 0 };
    } else {
      // v2: unallocated reads zeroes without a backing file (discard with one: unspecified).
      next = { kind: 'unallocated', offset: 0, copied: false, compressedSize: 0, allocBitmap: 0, zeroBitmap: 0 };
    }
    if (
      next.kind === entry.kind &&
      next.offset === entry.offset &&
      next.allocBitmap === entry.allocBitmap &&
      next.zeroBitmap === entry.zeroBitmap &&
      next.copied === entry.copied
    ) {
      return;
    }
    await image.markDirtyIfLazy();
    image.writeL2Entry(table, index, next);
    const kept = entry.kind !== 'compressed' && entry.offset !== 0 && next.offset === entry.offset;
    if (!kept) this.#releaseStorage(entry);
  }

  // ---- flush, status, resize, info, close ------------------------------------------------------

  async flush(): Promise<void> {
    checkOpen(this.#closed, 'flush');
    if (this.image.readOnly) return;
    await this.image.lock.exclusive(async () => {
      await this.image.flushMetadata();
      await this.image.file.flush();
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    checkOpen(this.#closed, 'blockStatus');
    const image = this.image;
    checkRequest('blockStatus', offset, length, image.size, 1);
    if (length === 0) throw new BlockError('INVALID_ARGUMENT', 'blockStatus of an empty range', { op: 'blockStatus', offset });
    return image.lock.shared(async () => {
      const first = await this.#statusAt(offset, length);
      let total = first.length;
      // Extend over following pieces with the same status, bounded by the request.
      while (total < length) {
        const next = await this.#statusAt(offset + total, length - total);
        if (
          next.data !== first.data ||
          next.zero !== first.zero ||
          next.depth !== first.depth ||
          next.compressed !== first.compressed ||
          next.allocated !== first.allocated ||
          (first.offset === undefined) !== (next.offset === undefined) ||
          (first.offset !== undefined && next.offset !== first.offset + total)
        ) {
          break;
        }
        total += next.length;
      }
      return { ...first, length: Math.min(total, length) };
    });
  }

  /** Status of the piece at `guest` (up to the end of its cluster or subcluster run). */
  async #statusAt(guest: number, max: number): Promise<BlockStatus> {
    const image = this.image;
    const cs = image.clusterSize;
    const clusterIndex = Math.floor(guest / cs);
    const inCluster = guest - clusterIndex * cs;
    let n = Math.min(cs - inCluster, max);
    const entry = await this.#entryAt(clusterIndex);
    let status: 'host' | 'zero' | 'backing' | 'compressed';
    if (entry === undefined) status = 'backing';
    else if (entry.kind === 'compressed') status = 'compressed';
    else if (entry.kind === 'zero-plain' || entry.kind === 'zero-alloc') status = 'zero';
    else if (image.extendedL2) {
      const scs = image.subclusterSize;
      const sc = Math.floor(inCluster / scs);
      const bit = 1 << sc;
      status = (entry.allocBitmap & bit) !== 0 ? 'host' : (entry.zeroBitmap & bit) !== 0 ? 'zero' : 'backing';
      n = Math.min((sc + 1) * scs - inCluster, max);
    } else status = entry.kind === 'normal' ? 'host' : 'backing';
    switch (status) {
      case 'host':
        return { length: n, data: true, zero: false, depth: 0, offset: entry!.offset + inCluster, allocated: true };
      case 'compressed':
        return { length: n, data: true, zero: false, depth: 0, compressed: true, allocated: true };
      case 'zero':
        return { length: n, data: false, zero: true, depth: 0, allocated: true };
      default: {
        // Unallocated here: the backing file's status one level down, or (no backing file, or past
        // its end) zeroes that no image holds, reported at this depth as QEMU does.
        const backing = image.backing;
        if (backing === undefined || guest >= backing.length) return { length: n, data: false, zero: true, depth: 0, allocated: false };
        n = Math.min(n, backing.length - guest);
        if (backing.blockStatus === undefined) return { length: n, data: true, zero: false, depth: 1, allocated: true };
        const b = await backing.blockStatus(guest, n);
        return { ...b, length: Math.min(b.length, n), depth: b.depth + 1, allocated: b.allocated ?? true };
      }
    }
  }

  async resize(length: number): Promise<void> {
    checkOpen(this.#closed, 'resize');
    const image = this.image;
    image.checkWritable('resize');
    if (!Number.isSafeInteger(length) || length < 0 || length % 512 !== 0) {
      throw new BlockError('INVALID_ARGUMENT', `bad size ${length} (a multiple of 512 is required)`, { op: 'resize' });
    }
    await image.lock.exclusive(async () => {
      const cs = image.clusterSize;
      const old = image.size;
      await image.flushMetadata();
      if (length > old) {
        const neededL1 = Math.ceil(length / (cs * image.l2Entries));
        if (neededL1 > image.l1Size) await this.#growL1(neededL1);
        // The tail of the old last cluster may hold stale bytes: make the new range read zero.
        if (old % cs !== 0) {
          const tailEnd = Math.min(Math.ceil(old / cs) * cs, length);
          const entry = await this.#entryAt(Math.floor(old / cs));
          if (entry !== undefined && entry.kind !== 'unallocated' && entry.kind !== 'zero-plain') {
            await this.#writeCluster(Math.floor(old / cs), old % cs, this.#zeroes.subarray(0, tailEnd - old));
            await image.flushMetadata();
          }
        }
      } else if (length < old) {
        // Shrink only when every cluster wholly past the new end is unallocated.
        const firstCluster = Math.ceil(length / cs);
        const lastCluster = Math.ceil(old / cs) - 1;
        for (let c = firstCluster; c <= lastCluster; ) {
          const l1Index = Math.floor(c / image.l2Entries);
          const l1 = image.l1Entry(l1Index);
          const tableEnd = (l1Index + 1) * image.l2Entries;
          if (l1.offset !== 0) {
            const table = await image.readL2(l1.offset);
            for (let i = c; i < Math.min(tableEnd, lastCluster + 1); i++) {
              if (!image.l2EntryIsEmpty(table, i % image.l2Entries)) {
                throw new BlockError('UNSUPPORTED', 'shrinking a qcow2 image is only supported when the cut-off tail is unallocated', {
                  op: 'resize',
                  offset: i * cs,
                });
              }
            }
          }
          c = tableEnd;
        }
      }
      image.header.size = length;
      await image.writeHeaderFields();
      await image.file.flush();
    });
  }

  /** Relocates the L1 table to a bigger one (metadata already flushed). Exclusive lock. */
  async #growL1(entries: number): Promise<void> {
    const image = this.image;
    const cs = image.clusterSize;
    const bytes = Math.ceil((entries * 8) / cs) * cs;
    if (bytes > MAX_L1_BYTES) throw new BlockError('UNSUPPORTED', 'the L1 table would exceed 32 MiB', { op: 'resize' });
    const table = new Uint8Array(entries * 8);
    table.set(image.l1Table);
    const oldOffset = image.header.l1TableOffset;
    const oldBytes = image.l1Table.length;
    const offset = await image.allocateClusters(bytes / cs);
    await image.file.write(offset, table);
    await image.refcounts.writeDirty();
    await image.file.flush();
    await image.replaceL1(offset, table);
    if (oldBytes > 0) image.freeClustersLater(oldOffset, oldBytes);
    await image.flushMetadata();
  }

  async info(): Promise<BlockDriverInfo> {
    checkOpen(this.#closed, 'info');
    const image = this.image;
    const header = image.header;
    const actualSize = (await image.file.allocatedSize?.()) ?? image.file.length;
    const formatSpecific: Record<string, unknown> = {
      compat: header.version === 2 ? '0.10' : '1.1',
      'refcount-bits': 1 << header.refcountOrder,
      corrupt: (header.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n,
    };
    if (header.version === 3) {
      formatSpecific['lazy-refcounts'] = (header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
      formatSpecific['extended-l2'] = image.extendedL2;
      formatSpecific['compression-type'] = header.compressionType === 1 ? 'zstd' : 'zlib';
    }
    return {
      format: 'qcow2',
      virtualSize: header.size,
      actualSize,
      clusterSize: image.clusterSize,
      ...(header.backingFile === undefined ? {} : { backingFilename: header.backingFile }),
      ...(backingFormatOf(header) === undefined ? {} : { backingFilenameFormat: backingFormatOf(header)! }),
      dirty: (header.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n,
      formatSpecific,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const image = this.image;
    try {
      if (!image.readOnly) await image.lock.exclusive(() => image.closeMetadata());
    } finally {
      this.#closed = true;
      await image.file.close();
      await image.backing?.close();
    }
  }
}
