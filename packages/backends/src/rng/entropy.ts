import { BackendError } from '../errors.js';

/** Fills a buffer with random bytes. */
export type EntropySource = (buffer: Uint8Array) => void;

/** Web Crypto's per-call limit (QuotaExceededError above it). */
export const GET_RANDOM_VALUES_MAX = 65536;

/**
 * The Web Crypto API's `getRandomValues`, in chunks of at most 64 KiB (the API's quota). Runs in
 * browsers and in Node (globalThis.crypto). The buffer must not be backed by a
 * SharedArrayBuffer (browsers refuse it): the device fills a private buffer, then copies.
 */
export const webCryptoEntropy: EntropySource = (buffer) => {
  const crypto = (globalThis as { crypto?: { getRandomValues?: (array: Uint8Array) => Uint8Array } }).crypto;
  if (crypto?.getRandomValues === undefined) {
    throw new BackendError('NOT_READY', 'globalThis.crypto.getRandomValues is not available', { device: 'rng' });
  }
  for (let at = 0; at < buffer.length; at += GET_RANDOM_VALUES_MAX) {
    crypto.getRandomValues(buffer.subarray(at, Math.min(buffer.length, at + GET_RANDOM_VALUES_MAX)));
  }
};
