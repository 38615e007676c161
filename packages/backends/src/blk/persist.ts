import { BackendError } from '../errors.js';
import type { BlkMetrics } from './metrics.js';

/**
 * The serialisable state of a {@link BlkDevice} beyond its queues (the transport saves those
 * with the ring's `saveState`). Plain JSON. Save after `drain()`: requests in flight are not
 * part of the snapshot.
 *
 * Version history: 1 — first version.
 */
export interface BlkDeviceState {
  readonly version: 1;
  /** The `writeback` config field (§5.2.4). */
  readonly writeback: boolean;
  /** `capacity` in sectors when saved; restore refuses a disk of another size. */
  readonly capacity: number;
  /** The device's configuration generation counter. */
  readonly configGeneration: number;
  /** The metrics JSON when saved (informational; not restored). */
  readonly metrics?: Record<string, unknown>;
}

/** Builds the state object. */
export function saveBlkState(input: { writeback: boolean; capacity: number; configGeneration: number; metrics?: BlkMetrics }): BlkDeviceState {
  return {
    version: 1,
    writeback: input.writeback,
    capacity: input.capacity,
    configGeneration: input.configGeneration,
    ...(input.metrics !== undefined ? { metrics: input.metrics.toJSON() } : {}),
  };
}

/**
 * Validates an untrusted snapshot (H16) and returns it typed. Missing optional fields take their
 * defaults so that older snapshots still load. Throws BackendError INVALID_STATE.
 */
export function restoreBlkState(state: unknown, device: { capacity: number }): BlkDeviceState {
  const fail = (field: string, message: string): never => {
    throw new BackendError('INVALID_STATE', `blk state: ${field} ${message}`, { device: 'blk', field });
  };
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return fail('state', 'is not an object');
  const s = state as Record<string, unknown>;
  if (s.version !== 1) return fail('version', `is ${JSON.stringify(s.version)}, expected 1`);
  const writeback = s.writeback ?? true;
  if (typeof writeback !== 'boolean') return fail('writeback', 'is not a boolean');
  const capacity = s.capacity ?? device.capacity;
  if (typeof capacity !== 'number' || !Number.isSafeInteger(capacity) || capacity < 0) return fail('capacity', 'is not a sector count');
  if (capacity !== device.capacity) return fail('capacity', `is ${capacity} sectors but the disk has ${device.capacity}`);
  const configGeneration = s.configGeneration ?? 0;
  if (typeof configGeneration !== 'number' || !Number.isSafeInteger(configGeneration) || configGeneration < 0) {
    return fail('configGeneration', 'is not a non-negative integer');
  }
  return { version: 1, writeback, capacity, configGeneration };
}
