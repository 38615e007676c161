export * from './constants.js';
export { RingError, type RingErrorCode, type RingErrorContext } from './errors.js';
export * from './types.js';
