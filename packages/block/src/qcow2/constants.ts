/**
 * qcow2 on-disk constants and the implementation limits that bound every size read from an
 * (untrusted) image. Spec: QEMU docs/interop/qcow2.rst ("qcow2 spec" below).
 */

/** "QFI\xfb" (qcow2 spec, Header, bytes 0-3). */
export const QCOW2_MAGIC = 0x514649fb;

/** Header length of version 2 (fixed) and the minimum of version 3. */
export const QCOW2_V2_HEADER_LENGTH = 72;
export const QCOW2_V3_MIN_HEADER_LENGTH = 104;
/** What we write for v3: through `compression_type` plus padding (as QEMU does). */
export const QCOW2_V3_HEADER_LENGTH = 112;

/** Header extension types (qcow2 spec, Header extensions). */
export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_NAME_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_FULL_DISK_ENCRYPTION = 0x0537be77;
export const EXT_EXTERNAL_DATA_FILE = 0x44415441;

/** incompatible_features bits. */
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
/** The incompatible bits this implementation understands (others refuse to open). */
export const INCOMPAT_SUPPORTED = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/** compatible_features bits. */
export const COMPAT_LAZY_REFCOUNTS = 1n << 0n;

/** autoclear_features bits. */
export const AUTOCLEAR_BITMAPS = 1n << 0n;
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;

/** Names of the features we know, for error messages and the feature name table we write. */
export const KNOWN_FEATURE_NAMES: readonly { type: 0 | 1 | 2; bit: number; name: string }[] = [
  { type: 0, bit: 0, name: 'dirty bit' },
  { type: 0, bit: 1, name: 'corrupt bit' },
  { type: 0, bit: 2, name: 'external data file' },
  { type: 0, bit: 3, name: 'compression type' },
  { type: 0, bit: 4, name: 'extended L2 entries' },
  { type: 1, bit: 0, name: 'lazy refcounts' },
  { type: 2, bit: 0, name: 'bitmaps' },
  { type: 2, bit: 1, name: 'raw external data' },
];

/** Cluster size limits: 512 bytes (spec minimum) to 2 MiB (QEMU's implementation limit). */
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Extended L2 entries need clusters of at least 16 KiB (qcow2 spec, cluster_bits note). */
export const MIN_EXTL2_CLUSTER_BITS = 14;
/** Subclusters per cluster with extended L2 entries. */
export const SUBCLUSTERS_PER_CLUSTER = 32;

/**
 * Largest active L1 table: 32 MiB, QEMU's QCOW_MAX_L1_SIZE. With 2 MiB clusters that maps 2 EB;
 * it bounds the one allocation sized by `l1_size`.
 */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
/**
 * Largest refcount table: 8 MiB, QEMU's QCOW_MAX_REFTABLE_SIZE ("enough for 2 PB images at 64k
 * cluster size"). Bounds the allocation sized by `refcount_table_clusters`.
 */
export const MAX_REFCOUNT_TABLE_BYTES = 8 * 1024 * 1024;
/** Snapshot count limit (QEMU's QCOW_MAX_SNAPSHOTS); we only validate it, extras parse the table. */
export const MAX_SNAPSHOTS = 65536;
/** Backing file name limit: 1023 bytes (qcow2 spec, backing_file_size). */
export const MAX_BACKING_FILE_NAME = 1023;
/** Backing chains deeper than this are refused (loops are refused at any depth). */
export const MAX_BACKING_DEPTH = 64;
/**
 * Host offsets are JavaScript numbers: anything at or above 2^53 cannot be represented exactly
 * and is treated as corrupt. (The spec allows 56-bit offsets; no real file gets near 2^53.)
 */
export const MAX_HOST_OFFSET = 2 ** 53;
/** Virtual sizes above 2^53 - 1 are refused for the same reason (QEMU's limit is 2^63 - 512). */
export const MAX_VIRTUAL_SIZE = Number.MAX_SAFE_INTEGER - 511;
