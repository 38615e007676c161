export { createNodeDeflateCodec } from './codec-node.js';
