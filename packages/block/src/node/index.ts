export { createNodeDeflateCodec } from './codec-node.js';
export { CACHE_MODES, parseCacheMode, type CacheMode } from './cache-mode.js';
export { NodeFile, type NodeFileOptions } from './file.js';
export { openImage, type OpenImageOptions } from './open-image.js';
