export type { BlockDriver, BlockDriverInfo, BlockFile, BlockStatus } from './block-driver.js';
export { BlockError, type BlockErrorCode, type BlockErrorContext } from './errors.js';
