export { GuestMemory, isValidRange } from './guest-memory.js';
export { GuestRegion, MAX_GUEST_ADDRESS, type GuestAddress, type GuestRegionOptions } from './guest-region.js';
export { MemoryError, type MemoryErrorCode, type MemoryErrorContext } from './errors.js';
