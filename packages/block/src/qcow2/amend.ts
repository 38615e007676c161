/**
 * Header rewrites of an open qcow2 image (qcow2 spec, "Header", "Header extensions"; QEMU
 * block/qcow2.c qcow2_change_backing_file and qcow2_amend_options): the backing file name and
 * format, the compat level (0.10 ↔ 1.1) and lazy refcounts.
 *
 * Crash safety: as QEMU does, the header is rewritten in place as one write of the first cluster,
 * after every cached table and refcount is on disk and flushed, and is flushed itself. Everything
 * (fixed fields, extensions, end marker, backing name) must fit in the first cluster; when it
 * would not, the call refuses (INVALID_ARGUMENT) before writing anything.
 */
import { BlockError } from '../errors.js';
import { COMPAT_LAZY_REFCOUNTS, INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, INCOMPAT_EXTL2 } from './constants.js';
import { cloneHeader, serializeQcow2Header, setBackingFormat, type Qcow2Header } from './header.js';
import type { L2Format } from './l2-entry.js';
import type { Qcow2Image } from './qcow2-image.js';
import type { Qcow2ImageHolder } from './snapshot.js';

function imageOf(holder: Qcow2ImageHolder): Qcow2Image {
  return 'image' in holder ? holder.image : holder;
}

/** Header length QEMU 7.2 writes for v3 (104 fixed bytes, compression type, padding to 8). */
const V3_HEADER_LENGTH = 112;

/**
 * Writes `next` as the new header cluster (after all metadata is flushed), flushes, and adopts it
 * in memory. Serialises first so a header that does not fit is refused without a write.
 */
async function rewriteHeader(image: Qcow2Image, next: Qcow2Header): Promise<void> {
  const bytes = serializeQcow2Header(next);
  await image.file.write(0, bytes);
  await image.file.flush();
  Object.assign(image.header, next);
}

/** Every cached table and refcount on disk, the lazy dirty bit cleared. Exclusive lock. */
async function settle(image: Qcow2Image): Promise<void> {
  image.checkWritable('amend');
  await image.closeMetadata();
}

/**
 * Records a new backing file name and format in the header (`qemu-img rebase -u` semantics: no
 * data is touched). `backingFile` undefined removes the backing file (and the format extension);
 * `backingFormat` undefined removes the backing format extension. Refuses (INVALID_ARGUMENT) when
 * the header would not fit in the first cluster or the name is longer than 1023 bytes.
 */
export async function setQcow2Backing(holder: Qcow2ImageHolder, backingFile: string | undefined, backingFormat: string | undefined): Promise<void> {
  const image = imageOf(holder);
  await image.lock.exclusive(async () => {
    image.checkWritable('setBacking');
    if (backingFile !== undefined && backingFile.length === 0) throw new BlockError('INVALID_ARGUMENT', 'empty backing file name', { op: 'setBacking' });
    const next = cloneHeader(image.header);
    next.backingFile = backingFile;
    setBackingFormat(next, backingFile === undefined ? undefined : backingFormat);
    serializeQcow2Header(cloneHeader(next)); // refuse before flushing anything
    await settle(image);
    await rewriteHeader(image, next);
  });
}

/** What {@link amendQcow2} changes; absent fields are kept. */
export interface Qcow2AmendOptions {
  /** '0.10' (version 2) or '1.1' (version 3). */
  readonly compat?: '0.10' | '1.1';
  readonly lazyRefcounts?: boolean;
}

/**
 * Changes the compat level and lazy refcounts in place (the cheap amendments of `qemu-img amend`).
 * Upgrade 0.10 → 1.1 rewrites the header only. Downgrade 1.1 → 0.10 refuses (UNSUPPORTED) when a
 * version-3-only feature is in use: zero clusters, extended L2, compression type other than
 * deflate, refcount bits other than 16, internal snapshots (their tables are not scanned), or
 * lazy refcounts requested on. Turning lazy refcounts off first writes every refcount (an image
 * opened writable with the dirty bit was already repaired at open) and clears the dirty bit.
 */
export async function amendQcow2(holder: Qcow2ImageHolder, options: Qcow2AmendOptions): Promise<void> {
  const image = imageOf(holder);
  await image.lock.exclusive(async () => {
    const fail = (message: string): never => {
      throw new BlockError('UNSUPPORTED', message, { op: 'amend', ...(image.path !== undefined ? { path: image.path } : {}) });
    };
    const header = image.header;
    const version = options.compat === undefined ? header.version : options.compat === '1.1' ? 3 : 2;
    const lazy = options.lazyRefcounts ?? (header.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
    if (lazy && version === 2) {
      fail(options.lazyRefcounts === true ? 'Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)' : 'Cannot downgrade an image with lazy refcounts enabled (use lazy_refcounts=off)');
    }
    if (version === 2 && header.version === 3) {
      if ((header.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n) fail('Cannot downgrade an image with extended L2 entries to compat=0.10');
      if ((header.incompatibleFeatures & INCOMPAT_COMPRESSION) !== 0n) fail('Cannot downgrade an image with a compression type other than zlib to compat=0.10');
      if ((header.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n) fail('Cannot downgrade a corrupt image');
      if (header.refcountOrder !== 4) fail('compat=0.10 requires refcount_bits=16');
      if (header.nbSnapshots > 0) fail('Downgrading an image with internal snapshots is not supported by this implementation');
      if (header.compatibleFeatures & ~COMPAT_LAZY_REFCOUNTS) fail('Cannot downgrade an image with unknown compatible features');
      await assertNoZeroClusters(image, fail);
    }
    await settle(image);
    if ((image.header.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n) fail('the image is still marked dirty after writing its refcounts');
    const next = cloneHeader(image.header);
    next.compatibleFeatures = lazy ? next.compatibleFeatures | COMPAT_LAZY_REFCOUNTS : next.compatibleFeatures & ~COMPAT_LAZY_REFCOUNTS;
    if (version === 3 && next.version === 2) {
      next.version = 3;
      next.incompatibleFeatures = 0n;
      next.autoclearFeatures = 0n;
      next.refcountOrder = 4;
      next.headerLength = V3_HEADER_LENGTH;
      next.compressionType = 0;
      next.additionalFields = new Uint8Array(V3_HEADER_LENGTH - 105);
    } else if (version === 2 && next.version === 3) {
      next.version = 2;
      next.incompatibleFeatures = 0n;
      next.compatibleFeatures = 0n;
      next.autoclearFeatures = 0n;
      next.headerLength = 72;
      next.compressionType = 0;
      next.additionalFields = new Uint8Array(0);
    }
    await rewriteHeader(image, next);
    // Zero clusters are described with the zero flag only in v3 standard L2 entries.
    (image as { l2Format: L2Format }).l2Format = { ...image.l2Format, zeroFlag: image.header.version === 3 && !image.extendedL2 };
  });
}

/** Refuses when an active L2 entry is a zero cluster (no such entry exists in version 2). */
async function assertNoZeroClusters(image: Qcow2Image, fail: (message: string) => never): Promise<void> {
  for (let i = 0; i < image.l1Size; i++) {
    const l1 = image.l1Entry(i);
    if (l1.offset === 0) continue;
    const table = await image.readL2(l1.offset);
    for (let j = 0; j < image.l2Entries; j++) {
      const kind = image.l2Entry(table, j).kind;
      if (kind === 'zero-plain' || kind === 'zero-alloc') fail('Cannot downgrade an image with zero clusters to compat=0.10 (vimg does not expand them)');
    }
  }
}
