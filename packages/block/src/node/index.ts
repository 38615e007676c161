export { createNodeDeflateCodec } from './codec-node.js';
export { NodeFile, type NodeFileOptions } from './file.js';
export { openImage, type OpenImageOptions } from './open-image.js';
