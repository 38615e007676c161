export { buildGuest, GuestBuildError, type BuildOptions, type GuestImage } from './build.js';
export { runGuest, type GuestResult, type RunGuestOptions } from './run.js';
export { INIT_SCRIPT } from './init-script.js';
export { defaultCacheDir } from './paths.js';
export { GUEST_PEERS, peerGate, type PeerRequirements } from './peers.js';
