/**
 * qcow2 internal snapshots (qcow2 spec, "Snapshots"; QEMU block/qcow2-snapshot.c): create, list,
 * apply (revert) and delete, on an open {@link Qcow2Image}.
 *
 * The refcount model: a data cluster's refcount counts every L1 table (the active one and each
 * snapshot's) whose tree reaches it, and an L2 table's refcount counts the L1 tables that point at
 * it. A snapshot therefore adds one to every L2 table and every cluster of the tree it copies.
 * QCOW_OFLAG_COPIED (bit 63) is set on an active L1 or L2 entry exactly when that refcount is 1.
 *
 * Crash safety (each step flushed before the next): refcount increases are on disk before any
 * table that relies on them; a new snapshot table is written (and its refcounts flushed) before
 * the header points at it; references are dropped only after the tables that held them are gone
 * from the disk. An interrupted operation leaves leaks at worst, never a refcount below its
 * references.
 */
import { BlockError } from '../errors.js';
import { MAX_L1_BYTES } from './constants.js';
import { decodeL1Entry, encodeL1Entry, type L2Entry } from './l2-entry.js';
import type { Qcow2Image } from './qcow2-image.js';
import {
  MAX_SNAPSHOTS,
  readSnapshotTable,
  serializeSnapshotTable,
  type Qcow2Snapshot,
} from './snapshot-table.js';

/** Something that holds an open qcow2 image: the image itself or a `Qcow2Driver`. */
export type Qcow2ImageHolder = Qcow2Image | { readonly image: Qcow2Image };

function imageOf(holder: Qcow2ImageHolder): Qcow2Image {
  return 'image' in holder ? holder.image : holder;
}

/** Options of {@link createSnapshot}. */
export interface CreateSnapshotOptions {
  /** Snapshot name (may repeat; QEMU allows it). */
  readonly name: string;
  /** Unique ID; default: one more than the largest numeric ID (QEMU's find_new_snapshot_id). */
  readonly id?: string;
  /** Creation time (default: now). */
  readonly date?: Date;
  /** Guest clock in nanoseconds (default 0: a disk-only snapshot taken offline). */
  readonly vmClockNsec?: bigint;
  /** Instruction count (default 0, as `qemu-img snapshot -c` writes; -1n: not recorded). */
  readonly icount?: bigint;
}

/** Reads the snapshot table of `image` (shared lock not taken: callers hold a lock). */
async function readTable(image: Qcow2Image): Promise<{ snapshots: Qcow2Snapshot[]; size: number }> {
  return readSnapshotTable(image.file, image.header.snapshotsOffset, image.header.nbSnapshots, { defaultDiskSize: image.size });
}

/** Lists the internal snapshots of an image, in table order. */
export async function listSnapshots(holder: Qcow2ImageHolder): Promise<Qcow2Snapshot[]> {
  const image = imageOf(holder);
  return image.lock.shared(async () => (await readTable(image)).snapshots);
}

/** QEMU's lookup: first by ID, then by name. */
function findSnapshot(snapshots: readonly Qcow2Snapshot[], idOrName: string): number {
  const byId = snapshots.findIndex((s) => s.id === idOrName);
  return byId >= 0 ? byId : snapshots.findIndex((s) => s.name === idOrName);
}

function nextSnapshotId(snapshots: readonly Qcow2Snapshot[]): string {
  // strtoul semantics: leading decimal digits, 0 when there are none.
  let max = 0;
  for (const s of snapshots) {
    const digits = /^\s*\+?(\d+)/.exec(s.id)?.[1];
    const n = digits === undefined ? 0 : Number(digits);
    if (n > max) max = n;
  }
  return String(max + 1);
}

/** Validates a snapshot's L1 table location before it is read (the table entry is untrusted). */
function checkSnapshotL1(image: Qcow2Image, snapshot: Qcow2Snapshot): void {
  const cs = image.clusterSize;
  const bytes = snapshot.l1Size * 8;
  const fail = (why: string): never => {
    throw image.signalCorruption(`snapshot '${snapshot.id}': L1 table ${why}`);
  };
  if (bytes > MAX_L1_BYTES) fail(`too large (${snapshot.l1Size} entries)`);
  if (bytes === 0) return;
  if (snapshot.l1TableOffset % cs !== 0) fail('offset is not cluster aligned');
  if (snapshot.l1TableOffset < cs) fail('overlaps the header');
  if (snapshot.l1TableOffset + bytes > image.file.length) fail('extends past the end of the file');
}

async function readSnapshotL1(image: Qcow2Image, snapshot: Qcow2Snapshot): Promise<Uint8Array> {
  checkSnapshotL1(image, snapshot);
  const l1 = new Uint8Array(snapshot.l1Size * 8);
  if (l1.length > 0) await image.file.read(snapshot.l1TableOffset, l1);
  return l1;
}

/** Host clusters a compressed cluster's stored bytes touch. */
function compressedClusters(image: Qcow2Image, entry: L2Entry): [first: number, last: number] {
  const cs = image.clusterSize;
  return [Math.floor(entry.offset / cs), Math.floor((entry.offset + entry.compressedSize - 1) / cs)];
}

/**
 * QEMU's qcow2_update_snapshot_refcount: adds `addend` (-1, 0, +1) to the refcount of every L2
 * table of the tree under `l1` and of every cluster those tables map, and (when `fixCopied`) sets
 * QCOW_OFLAG_COPIED on each L2 and L1 entry whose refcount is now exactly 1, clearing it elsewhere.
 *
 * `l1` is either the active table (`'active'`, changed through the image) or a table's bytes,
 * changed in place (the caller writes them back if it keeps them). Exclusive lock.
 */
export async function updateTreeRefcounts(
  image: Qcow2Image,
  l1: 'active' | Uint8Array,
  addend: -1 | 0 | 1,
  fixCopied = true,
): Promise<boolean> {
  const cs = image.clusterSize;
  const size = l1 === 'active' ? image.l1Size : l1.length / 8;
  const view = l1 === 'active' ? undefined : new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
  let l1Modified = false;
  for (let i = 0; i < size; i++) {
    const l1Entry =
      view === undefined ? image.l1Entry(i) : decodeL1Entry(view.getUint32(i * 8), view.getUint32(i * 8 + 4), image.clusterBits);
    if (l1Entry.offset === 0) continue;
    if (l1Entry.offset < cs) throw image.signalCorruption(`L1 entry ${i} points at the header`);
    const table = await image.readL2(l1Entry.offset);
    for (let j = 0; j < image.l2Entries; j++) {
      if (image.l2EntryIsEmpty(table, j)) continue;
      const entry = image.l2Entry(table, j);
      let refcount = 0;
      if (entry.kind === 'compressed') {
        if (addend !== 0) {
          const [first, last] = compressedClusters(image, entry);
          for (let c = first; c <= last; c++) await image.updateRefcount(c, addend);
        }
        refcount = 2; // compressed clusters are never written in place: never COPIED
      } else if (entry.offset !== 0) {
        const cluster = entry.offset / cs;
        refcount = addend !== 0 ? await image.updateRefcount(cluster, addend) : await image.getRefcount(cluster);
      }
      const copied = refcount === 1;
      if (fixCopied && copied !== entry.copied) image.writeL2Entry(table, j, { ...entry, copied });
    }
    const l2Cluster = l1Entry.offset / cs;
    const refcount = addend !== 0 ? await image.updateRefcount(l2Cluster, addend) : await image.getRefcount(l2Cluster);
    if (refcount === 0) image.l2Cache.drop(l1Entry.offset);
    const copied = refcount === 1;
    if (fixCopied && copied !== l1Entry.copied) {
      if (view === undefined) {
        image.setL1Entry(i, { offset: l1Entry.offset, copied });
      } else {
        const [hi, lo] = encodeL1Entry({ offset: l1Entry.offset, copied });
        view.setUint32(i * 8, hi);
        view.setUint32(i * 8 + 4, lo);
      }
      l1Modified = true;
    }
  }
  return l1Modified;
}

/**
 * Writes `snapshots` as the new snapshot table: new clusters, written and their refcounts flushed,
 * then the header switched (flushed), then the old table's clusters freed. Exclusive lock.
 */
async function writeTable(image: Qcow2Image, snapshots: readonly Qcow2Snapshot[], oldSize: number): Promise<void> {
  const cs = image.clusterSize;
  const bytes = serializeSnapshotTable(snapshots);
  let offset = 0;
  if (bytes.length > 0) {
    const clusters = Math.ceil(bytes.length / cs);
    offset = await image.allocateClusters(clusters);
    const padded = new Uint8Array(clusters * cs);
    padded.set(bytes);
    await image.file.write(offset, padded);
  }
  await image.flushMetadata();
  await image.file.flush();
  const oldOffset = image.header.snapshotsOffset;
  image.header.nbSnapshots = snapshots.length;
  image.header.snapshotsOffset = offset;
  await image.writeHeaderFields();
  await image.file.flush();
  if (oldSize > 0) await image.freeClusters(oldOffset, oldSize);
}

/**
 * Creates an internal snapshot of the active state (a disk-only snapshot: no VM state), like
 * `qemu-img snapshot -c`. Returns the new table entry.
 *
 * @example
 * ```ts
 * const driver = await Qcow2Driver.open(file);
 * await createSnapshot(driver, { name: 'before-upgrade' });
 * await driver.write(0, data);
 * await applySnapshot(driver, 'before-upgrade'); // the disk is back as it was
 * ```
 */
export async function createSnapshot(holder: Qcow2ImageHolder, options: CreateSnapshotOptions): Promise<Qcow2Snapshot> {
  const image = imageOf(holder);
  return image.lock.exclusive(async () => {
    image.checkWritable('snapshot');
    if (image.refcounts.maxRefcount < 2) {
      throw new BlockError('UNSUPPORTED', 'internal snapshots need refcounts of at least 2 bits', { op: 'snapshot' });
    }
    const { snapshots, size: oldSize } = await readTable(image);
    if (snapshots.length >= MAX_SNAPSHOTS) {
      throw new BlockError('INVALID_ARGUMENT', `the image already has ${MAX_SNAPSHOTS} snapshots`, { op: 'snapshot' });
    }
    const id = options.id ?? nextSnapshotId(snapshots);
    if (id.length === 0) throw new BlockError('INVALID_ARGUMENT', 'snapshot ID is empty', { op: 'snapshot' });
    if (snapshots.some((s) => s.id === id)) {
      throw new BlockError('INVALID_ARGUMENT', `a snapshot with ID '${id}' already exists`, { op: 'snapshot' });
    }
    const ms = (options.date ?? new Date()).getTime();
    const snapshot: Qcow2Snapshot = {
      l1TableOffset: 0,
      l1Size: image.l1Size,
      id,
      name: options.name,
      dateSec: Math.floor(ms / 1000),
      dateNsec: (ms % 1000) * 1_000_000,
      vmClockNsec: options.vmClockNsec ?? 0n,
      vmStateSize: 0,
      diskSize: image.size,
      // qemu-img snapshot -c records 0 (its SnapshotInfo is zero-filled); a running VM without
      // record/replay records -1.
      icount: options.icount ?? 0n,
      extraDataSize: 0,
      unknownExtraData: new Uint8Array(0),
    };
    // Refuse a table that breaks a bound before changing anything.
    serializeSnapshotTable([...snapshots, snapshot]);

    // The copy must be of a tree that is entirely on disk.
    await image.flushMetadata();
    const l1 = image.l1Table.slice();
    // The copy carries no COPIED flags: its L2 tables are shared from now on.
    for (let i = 0; i < l1.length; i += 8) l1[i]! &= 0x7f;
    if (l1.length > 0) {
      const clusters = Math.ceil(l1.length / image.clusterSize);
      snapshot.l1TableOffset = await image.allocateClusters(clusters);
      const padded = new Uint8Array(clusters * image.clusterSize);
      padded.set(l1);
      await image.file.write(snapshot.l1TableOffset, padded);
    }
    // +1 on the whole active tree; COPIED cleared where clusters are now shared. Refcounts reach
    // the disk before the L2 and L1 tables (flushMetadata's order), all before the table entry.
    await updateTreeRefcounts(image, 'active', 1);
    await image.flushMetadata();
    await writeTable(image, [...snapshots, snapshot], oldSize);
    snapshot.extraDataSize = 24;
    return snapshot;
  });
}

/**
 * Reverts the active state to a snapshot (`qemu-img snapshot -a`): the active L1 table becomes a
 * copy of the snapshot's, the snapshot's tree gains a reference and the old active tree loses one.
 * `idOrName` is matched against IDs first, then names.
 */
export async function applySnapshot(holder: Qcow2ImageHolder, idOrName: string): Promise<void> {
  const image = imageOf(holder);
  await image.lock.exclusive(async () => {
    image.checkWritable('snapshot');
    const { snapshots } = await readTable(image);
    const index = findSnapshot(snapshots, idOrName);
    if (index < 0) throw new BlockError('INVALID_ARGUMENT', `snapshot '${idOrName}' not found`, { op: 'snapshot' });
    const snapshot = snapshots[index]!;
    if (snapshot.diskSize !== undefined && snapshot.diskSize !== image.size) {
      // As QEMU: "Loading snapshots with different disk size is not implemented".
      throw new BlockError('UNSUPPORTED', 'applying a snapshot of a different disk size is not supported', { op: 'snapshot' });
    }
    const snapshotL1 = await readSnapshotL1(image, snapshot);
    await image.flushMetadata();

    // 1. The snapshot's tree gains a reference, on disk before the active L1 points at it.
    await updateTreeRefcounts(image, snapshotL1.slice(), 1, false);
    await image.flushMetadata();

    // 2. The active L1 becomes the snapshot's (zero-padded to the larger of the two sizes).
    const oldL1 = image.l1Table.slice();
    const newSize = Math.max(image.l1Size, snapshot.l1Size);
    const newL1 = new Uint8Array(newSize * 8);
    newL1.set(snapshotL1);
    if (newSize === image.l1Size) {
      image.l1Table.set(newL1);
      await image.writeL1();
      await image.file.flush();
    } else {
      // Grow: a new table, written and flushed before the header points at it.
      const cs = image.clusterSize;
      const oldOffset = image.header.l1TableOffset;
      const oldClusters = Math.ceil(oldL1.length / cs);
      const clusters = Math.ceil(newL1.length / cs);
      const offset = await image.allocateClusters(clusters);
      const padded = new Uint8Array(clusters * cs);
      padded.set(newL1);
      await image.file.write(offset, padded);
      await image.flushMetadata();
      await image.file.flush();
      await image.replaceL1(offset, newL1);
      if (oldClusters > 0) await image.freeClusters(oldOffset, oldClusters * cs);
    }

    // 3. The old active tree loses its reference; then COPIED is recomputed on the new one.
    await updateTreeRefcounts(image, oldL1, -1, false);
    await updateTreeRefcounts(image, 'active', 0);
    await image.flushMetadata();
  });
}

/**
 * Deletes a snapshot (`qemu-img snapshot -d`): the table entry goes first (new table, header
 * switched), then its tree loses a reference and its L1 copy is freed. `idOrName` is matched
 * against IDs first, then names.
 */
export async function deleteSnapshot(holder: Qcow2ImageHolder, idOrName: string): Promise<void> {
  const image = imageOf(holder);
  await image.lock.exclusive(async () => {
    image.checkWritable('snapshot');
    const { snapshots, size: oldSize } = await readTable(image);
    const index = findSnapshot(snapshots, idOrName);
    if (index < 0) throw new BlockError('INVALID_ARGUMENT', `snapshot '${idOrName}' not found`, { op: 'snapshot' });
    const snapshot = snapshots[index]!;
    const snapshotL1 = await readSnapshotL1(image, snapshot);
    await image.flushMetadata();
    await writeTable(image, snapshots.filter((_, i) => i !== index), oldSize);
    // Nothing on disk points at the snapshot's L1 now: drop its references.
    await updateTreeRefcounts(image, snapshotL1, -1, false);
    if (snapshotL1.length > 0) await image.freeClusters(snapshot.l1TableOffset, snapshotL1.length);
    await updateTreeRefcounts(image, 'active', 0);
    await image.flushMetadata();
  });
}
