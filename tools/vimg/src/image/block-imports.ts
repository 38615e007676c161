/** The names vimg takes from @virtio-ts/block, in one place. */
export {
  applySnapshot,
  BlockError,
  checkQcow2,
  createQcow2,
  createRaw,
  createSnapshot,
  createZstdCodec,
  deleteSnapshot,
  listSnapshots,
  Qcow2Driver,
  RawDriver,
  type BlockDriver,
  type BlockFile,
  type Qcow2Codec,
} from '@virtio-ts/block';
export { createNodeDeflateCodec, NodeFile } from '@virtio-ts/block/node';
