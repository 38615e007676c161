import { BackendError } from '../errors.js';

/**
 * Serialisable state of a {@link RngDevice} beyond its queue: the rate limiter's level.
 * Version history: 1 — first version.
 */
export interface RngDeviceState {
  readonly version: 1;
  /** Tokens (bytes) in the bucket when saved; absent without a rate limit. */
  readonly tokens?: number;
}

/** Validates an untrusted snapshot (H16); throws BackendError INVALID_STATE. */
export function restoreRngState(state: unknown): RngDeviceState {
  const fail = (field: string, message: string): never => {
    throw new BackendError('INVALID_STATE', `rng state: ${field} ${message}`, { device: 'rng', field });
  };
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return fail('state', 'is not an object');
  const s = state as Record<string, unknown>;
  if (s.version !== 1) return fail('version', `is ${JSON.stringify(s.version)}, expected 1`);
  if (s.tokens === undefined) return { version: 1 };
  if (typeof s.tokens !== 'number' || !Number.isFinite(s.tokens) || s.tokens < 0) return fail('tokens', 'is not a non-negative number');
  return { version: 1, tokens: s.tokens };
}
