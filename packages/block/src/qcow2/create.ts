/**
 * `createQcow2`: writes a new, empty qcow2 image (QEMU's layout: header, refcount table,
 * refcount block(s), L1 table), optionally preallocated.
 */
import type { BlockFile } from '../block-driver.js';
import { BlockError } from '../errors.js';
import type { CompressionType } from './codec.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_COMPRESSION,
  INCOMPAT_EXTL2,
  KNOWN_FEATURE_NAMES,
  MAX_CLUSTER_BITS,
  MAX_L1_BYTES,
  MAX_VIRTUAL_SIZE,
  MIN_CLUSTER_BITS,
  MIN_EXTL2_CLUSTER_BITS,
  QCOW2_V3_HEADER_LENGTH,
} from './constants.js';
import { encodeFeatureNameTable, serializeQcow2Header, setBackingFormat, type Qcow2Header } from './header.js';
import { splitOffset } from './l2-entry.js';
import { Qcow2Image } from './qcow2-image.js';
import { refcountEntriesPerBlock, setRefcountEntry } from './refcount-block.js';

/** Preallocation modes (qemu-img's `preallocation=`). */
export type Preallocation = 'off' | 'metadata' | 'falloc' | 'full';

/** Options of {@link createQcow2}, named after qemu-img's `-o` options. */
export interface Qcow2CreateOptions {
  /** Virtual size in bytes (rounded up to 512 as qemu-img does). */
  readonly size: number;
  /** Default 65536; a power of two from 512 to 2 MiB. */
  readonly clusterSize?: number;
  /** '1.1' (v3, default) or '0.10' (v2). */
  readonly compat?: '0.10' | '1.1';
  readonly backingFile?: string;
  readonly backingFormat?: string;
  readonly lazyRefcounts?: boolean;
  readonly extendedL2?: boolean;
  /** 1, 2, 4, 8, 16 (default), 32 or 64; v2 only supports 16. */
  readonly refcountBits?: number;
  readonly preallocation?: Preallocation;
  readonly compressionType?: CompressionType;
}

/**
 * Writes an empty qcow2 image into `file` (truncated first). The result passes `qemu-img check`.
 *
 * With `preallocation`: `metadata` allocates every L2 table and data cluster (reading as the
 * file's zeroes); `falloc` also reserves the data on the host (fallocate, where the file adapter
 * has it; otherwise as `full`); `full` writes zeroes over the data.
 */
export async function createQcow2(file: BlockFile, options: Qcow2CreateOptions): Promise<void> {
  const bad = (message: string): never => {
    throw new BlockError('INVALID_ARGUMENT', message, { op: 'create' });
  };
  const size = Math.ceil(options.size / 512) * 512;
  if (!Number.isSafeInteger(options.size) || options.size < 0 || size > MAX_VIRTUAL_SIZE) bad(`bad size ${options.size}`);
  const clusterSize = options.clusterSize ?? 65536;
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    bad(`cluster size ${clusterSize} must be a power of two between 512 and 2 MiB`);
  }
  const version = options.compat === '0.10' ? 2 : 3;
  const refcountBits = options.refcountBits ?? 16;
  const refcountOrder = Math.log2(refcountBits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) bad(`refcount bits ${refcountBits} must be a power of two up to 64`);
  if (version === 2) {
    if (refcountBits !== 16) bad('compat 0.10 only supports 16-bit refcounts');
    if (options.lazyRefcounts === true) bad('lazy refcounts need compat 1.1');
    if (options.extendedL2 === true) bad('extended L2 entries need compat 1.1');
    if (options.compressionType === 'zstd') bad('zstd compression needs compat 1.1');
  }
  const extendedL2 = options.extendedL2 === true;
  if (extendedL2 && clusterBits < MIN_EXTL2_CLUSTER_BITS) bad('extended L2 entries need clusters of at least 16 KiB');
  if (options.backingFormat !== undefined && options.backingFile === undefined) bad('a backing format needs a backing file');
  const preallocation = options.preallocation ?? 'off';
  if (preallocation !== 'off' && options.backingFile !== undefined) bad('preallocation with a backing file is not supported');

  const l2Entries = clusterSize / (extendedL2 ? 16 : 8);
  const l1Size = Math.ceil(size / (clusterSize * l2Entries));
  if (l1Size * 8 > MAX_L1_BYTES) bad('the image is too large for this cluster size (L1 table over 32 MiB)');
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / clusterSize));
  // Header, refcount table, refcount blocks, L1: find the fixed point of table/blocks sizes.
  const epb = refcountEntriesPerBlock(clusterBits, refcountOrder);
  let tableClusters = 1;
  let blocks = 1;
  for (;;) {
    const total = 1 + tableClusters + blocks + l1Clusters;
    const needBlocks = Math.ceil(total / epb);
    const needTable = Math.ceil((needBlocks * 8) / clusterSize);
    if (needBlocks === blocks && needTable === tableClusters) break;
    blocks = Math.max(blocks, needBlocks);
    tableClusters = Math.max(tableClusters, needTable);
  }
  const tableOffset = clusterSize;
  const blocksOffset = tableOffset + tableClusters * clusterSize;
  const l1Offset = blocksOffset + blocks * clusterSize;
  const totalClusters = 1 + tableClusters + blocks + l1Clusters;

  let incompat = 0n;
  if (extendedL2) incompat |= INCOMPAT_EXTL2;
  const compressionType = options.compressionType === 'zstd' ? 1 : 0;
  if (compressionType !== 0) incompat |= INCOMPAT_COMPRESSION;
  const header: Qcow2Header = {
    version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits,
    size,
    cryptMethod: 0,
    l1Size,
    l1TableOffset: l1Offset,
    refcountTableOffset: tableOffset,
    refcountTableClusters: tableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: incompat,
    compatibleFeatures: options.lazyRefcounts === true ? COMPAT_LAZY_REFCOUNTS : 0n,
    autoclearFeatures: 0n,
    refcountOrder,
    headerLength: version === 3 ? QCOW2_V3_HEADER_LENGTH : 72,
    compressionType,
    additionalFields: new Uint8Array(version === 3 ? QCOW2_V3_HEADER_LENGTH - 105 : 0),
    extensions: [],
    backingFile: options.backingFile,
  };
  if (options.backingFormat !== undefined) setBackingFormat(header, options.backingFormat);
  let headerBytes: Uint8Array;
  if (version === 3) {
    // QEMU writes a feature name table into v3 images; leave it out when the cluster is too small.
    header.extensions.push(encodeFeatureNameTable(KNOWN_FEATURE_NAMES));
    try {
      headerBytes = serializeQcow2Header(header);
    } catch {
      header.extensions.pop();
      headerBytes = serializeQcow2Header(header);
    }
  } else {
    headerBytes = serializeQcow2Header(header);
  }

  await file.truncate(0);
  await file.write(0, headerBytes);
  const table = new Uint8Array(tableClusters * clusterSize);
  const tableView = new DataView(table.buffer);
  for (let b = 0; b < blocks; b++) {
    const [hi, lo] = splitOffset(blocksOffset + b * clusterSize);
    tableView.setUint32(b * 8, hi);
    tableView.setUint32(b * 8 + 4, lo);
  }
  await file.write(tableOffset, table);
  const blockBytes = new Uint8Array(blocks * clusterSize);
  for (let b = 0; b < blocks; b++) {
    const block = blockBytes.subarray(b * clusterSize, (b + 1) * clusterSize);
    const view = new DataView(block.buffer, block.byteOffset, clusterSize);
    for (let i = 0; i < epb; i++) {
      const cluster = b * epb + i;
      if (cluster >= totalClusters) break;
      setRefcountEntry(block, view, i, refcountOrder, 1);
    }
  }
  await file.write(blocksOffset, blockBytes);
  await file.truncate(totalClusters * clusterSize);
  await file.flush();

  if (preallocation !== 'off') await preallocate(file, preallocation);
}

/** Allocates every L2 table and data cluster of a fresh image. */
async function preallocate(file: BlockFile, mode: Preallocation): Promise<void> {
  const image = await Qcow2Image.open(file);
  const cs = image.clusterSize;
  const clusters = Math.ceil(image.size / cs);
  // falloc reserves the data clusters with the host's fallocate when the file can (like qemu-img);
  // full, and falloc on a file without it, writes zeroes over them.
  const reserve = mode === 'falloc' && file.allocate !== undefined ? file.allocate.bind(file) : undefined;
  const zeroes = mode === 'metadata' || reserve !== undefined ? undefined : new Uint8Array(Math.min(cs * image.l2Entries, 4 * 1024 * 1024));
  await image.lock.exclusive(async () => {
    for (let l1Index = 0; l1Index * image.l2Entries < clusters; l1Index++) {
      const count = Math.min(image.l2Entries, clusters - l1Index * image.l2Entries);
      const l2Offset = await image.allocateClusters(1);
      const table = image.l2Cache.create(l2Offset);
      image.setL1Entry(l1Index, { offset: l2Offset, copied: true });
      const data = await image.allocateClusters(count);
      for (let i = 0; i < count; i++) {
        image.writeL2Entry(table, i, {
          kind: 'normal',
          offset: data + i * cs,
          copied: true,
          compressedSize: 0,
          allocBitmap: image.extendedL2 ? 0xffffffff : 0,
          zeroBitmap: 0,
        });
      }
      const end = data + count * cs;
      if (reserve !== undefined) {
        await reserve(data, end - data);
      } else if (zeroes !== undefined) {
        for (let at = data; at < end; at += zeroes.length) await file.write(at, zeroes.subarray(0, Math.min(zeroes.length, end - at)));
      } else if (file.length < end) {
        await file.truncate(end);
      }
      await image.flushMetadata();
    }
    await image.closeMetadata();
  });
}
