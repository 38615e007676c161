// Test helpers of @virtio-ts/ring, exported as `@virtio-ts/ring/testing`.
// Packed ring helpers: (added by the packed ring's author)
export * from './packed-helpers.js';
