export type { BlockDriver, BlockDriverInfo, BlockFile, BlockStatus } from './block-driver.js';
export { BlockError, type BlockErrorCode, type BlockErrorContext } from './errors.js';
export type { CompressionType, Qcow2Codec } from './qcow2/codec.js';
export { createDeflateCodec } from './qcow2/compression-deflate.js';
export { createZstdCodec } from './qcow2/compression-zstd.js';
