import type { GuestMemory } from '@virtio-ts/memory';
import { RingError } from '../errors.js';
import type { PackedQueueState } from '../types.js';
import { validatePackedLayout } from './layout.js';

function invalid(message: string, context: { head?: number; descriptor?: number; length?: number } = {}, cause?: unknown): never {
  throw new RingError('INVALID_STATE', message, context, cause === undefined ? undefined : { cause });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/**
 * Checks an untrusted {@link PackedQueueState} (HOSTILE-INPUTS H16) before a queue is built
 * from it. Every field is type-checked; the in-flight list's length is bounded by the queue
 * size before it is walked; ids must be unique and below the size; each buffer's slot count
 * in 1..size; and the slots in flight must equal the distance from the used position to the
 * avail position, counting a lap when the wrap counters differ (§2.8.1). Throws `INVALID_STATE`
 * (a bad ring layout is `INVALID_STATE` with the `INVALID_LAYOUT` error as `cause`).
 * @internal
 */
export function validatePackedState(state: unknown, memory: GuestMemory): asserts state is PackedQueueState {
  const s = state;
  if (!isObject(s)) invalid('queue state must be an object');
  if (s.version !== 1) invalid('unsupported queue state version');
  if (s.layout !== 'packed') invalid('queue state is not for a packed queue');
  if (!isObject(s.ring)) invalid('queue state has no ring layout');
  try {
    validatePackedLayout(s.ring as unknown as PackedQueueState['ring'], memory);
  } catch (cause) {
    invalid('queue state ring layout is invalid', {}, cause);
  }
  const size = (s.ring as unknown as PackedQueueState['ring']).size;
  const f = s.features;
  if (!isObject(f) || typeof f.eventIdx !== 'boolean' || typeof f.indirect !== 'boolean' || typeof f.inOrder !== 'boolean') {
    invalid('queue state features must be three booleans');
  }
  for (const key of ['availWrapCounter', 'usedWrapCounter', 'broken'] as const) {
    if (typeof s[key] !== 'boolean') invalid(`queue state ${key} must be a boolean`);
  }
  for (const key of ['nextAvail', 'nextUsed'] as const) {
    const value = s[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= size) {
      invalid(`queue state ${key} must be a ring position below the queue size`, { descriptor: typeof value === 'number' ? value : -1 });
    }
  }
  const list = s.inFlight;
  if (!Array.isArray(list)) invalid('queue state inFlight must be an array');
  if (list.length > size) invalid('queue state has more buffers in flight than the queue size', { length: list.length });
  const seen = new Uint8Array(size);
  let slots = 0;
  for (const entry of list as unknown[]) {
    if (!isObject(entry)) invalid('queue state inFlight entries must be objects');
    const { id, descriptorCount } = entry;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= size) invalid('in-flight buffer id is not below the queue size', { head: Number(id) });
    if (seen[id] !== 0) invalid('in-flight buffer id listed twice', { head: id });
    seen[id] = 1;
    if (typeof descriptorCount !== 'number' || !Number.isInteger(descriptorCount) || descriptorCount < 1 || descriptorCount > size) {
      invalid('in-flight buffer slot count must be in 1..size', { head: id });
    }
    slots += descriptorCount;
  }
  let distance = (s.nextAvail as number) - (s.nextUsed as number);
  if (s.availWrapCounter !== s.usedWrapCounter) distance += size;
  if (distance < 0 || distance > size) invalid('queue state avail and used positions are more than one lap apart');
  if (distance !== slots) invalid('queue state in-flight slots do not match the distance between avail and used positions', { length: slots });
}
