export type { BlockDriver, BlockDriverInfo, BlockFile, BlockStatus } from './block-driver.js';
export { BlockError, type BlockErrorCode, type BlockErrorContext } from './errors.js';
export { MemoryFile, type MemoryFileOptions } from './memory-file.js';
export { probeFormat, type ImageFormat } from './probe.js';
export { RawDriver, createRaw, type RawCreateOptions, type RawOpenOptions } from './raw/raw-driver.js';
export type { CompressionType, Qcow2Codec } from './qcow2/codec.js';
export { Qcow2Driver } from './qcow2/qcow2-driver.js';
export type { Qcow2OpenOptions } from './qcow2/qcow2-image.js';
export { createQcow2, type Preallocation, type Qcow2CreateOptions } from './qcow2/create.js';
export { createDeflateCodec } from './qcow2/compression-deflate.js';
export { createZstdCodec } from './qcow2/compression-zstd.js';
export type { Qcow2Snapshot } from './qcow2/snapshot-table.js';
export {
  applySnapshot,
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  type CreateSnapshotOptions,
  type Qcow2ImageHolder,
} from './qcow2/snapshot.js';
export {
  checkExitCode,
  checkQcow2,
  qemuImgCheckJson,
  type Qcow2CheckOptions,
  type Qcow2CheckResult,
  type Qcow2RepairMode,
} from './qcow2/check.js';
export { amendQcow2, setQcow2Backing, type Qcow2AmendOptions } from './qcow2/amend.js';
export { makeEmptyQcow2 } from './qcow2/make-empty.js';
