/**
 * Host cache modes, named and behaving like qemu-img's `-t`/`-T` (QEMU's `cache=`):
 *
 * | mode         | O_DIRECT | O_DSYNC | flush       |
 * |--------------|----------|---------|-------------|
 * | writeback    | no       | no      | fdatasync   |
 * | none         | yes      | no      | fdatasync   |
 * | writethrough | no       | yes     | fdatasync   |
 * | directsync   | yes      | yes     | fdatasync   |
 * | unsafe       | no       | no      | no-op       |
 */
import { BlockError } from '../errors.js';

export type CacheMode = 'writeback' | 'none' | 'writethrough' | 'directsync' | 'unsafe';

export const CACHE_MODES: readonly CacheMode[] = ['writeback', 'none', 'writethrough', 'directsync', 'unsafe'];

/** Whether `mode` bypasses the host page cache (O_DIRECT). */
export function isDirect(mode: CacheMode): boolean {
  return mode === 'none' || mode === 'directsync';
}

/** Whether every write is durable on completion (O_DSYNC). */
export function isWriteThrough(mode: CacheMode): boolean {
  return mode === 'writethrough' || mode === 'directsync';
}

/** Parses a `-t` argument; INVALID_ARGUMENT names the accepted modes. */
export function parseCacheMode(value: string): CacheMode {
  if ((CACHE_MODES as readonly string[]).includes(value)) return value as CacheMode;
  throw new BlockError('INVALID_ARGUMENT', `invalid cache mode '${value}' (expected ${CACHE_MODES.join(', ')})`, { op: 'open' });
}
