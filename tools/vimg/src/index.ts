export { runVimg, describeError } from './run.js';
export { parseCommandLine, type ParsedCommand } from './cli/parse.js';
export { parseSize, formatSize } from './cli/size.js';
export { parseOptionList } from './cli/option-list.js';
export { VimgError, type VimgErrorCode, type VimgErrorContext } from './errors.js';
export { NodeImageHost } from './image/node-image-host.js';
export { BackingPolicy, MAX_BACKING_DEPTH } from './image/backing-policy.js';
export type { ImageHost, ImageChain, ImageLayer, OpenOptions, CreateRequest } from './image/image-host.js';
export type { CliIo } from './commands/context.js';
