/** The names vimg takes from @virtio-ts/block, in one place. */
export {
  amendQcow2,
  applySnapshot,
  BlockError,
  checkQcow2,
  createQcow2,
  createRaw,
  createSnapshot,
  createZstdCodec,
  deleteSnapshot,
  listSnapshots,
  makeEmptyQcow2,
  Qcow2Driver,
  setQcow2Backing,
  RawDriver,
  type BlockDriver,
  type BlockFile,
  type Qcow2Codec,
} from '@virtio-ts/block';
export { createNodeDeflateCodec, NodeFile } from '@virtio-ts/block/node';
