import type { GuestMemory } from '@virtio-ts/memory';
import { RingError, type RingErrorContext } from '../errors.js';
import type { QueueFeatures, SplitQueueLayout, SplitQueueState } from '../types.js';
import { isValidSplitQueueSize, validateSplitLayout } from './layout.js';

function invalid(message: string, context: RingErrorContext = {}, cause?: unknown): never {
  throw new RingError('INVALID_STATE', `saved split queue state: ${message}`, context, cause === undefined ? undefined : { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function u16(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff) invalid(`${name} must be an integer in 0..65535`);
  return value;
}

function flag(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') invalid(`${name} must be a boolean`);
  return value;
}

/**
 * Validates an untrusted {@link SplitQueueState} (H16: a hostile or corrupt snapshot) and returns
 * a clean copy. Checks the version, the layout against §2.7 and `memory`, the feature flags, the
 * 16-bit indices, and the in-flight heads: each < size, no duplicates, and (unless the queue was
 * saved broken) exactly `nextAvail - nextUsed` of them, since every popped chain is either in
 * flight or used. Never allocates more than the queue size.
 */
export function restoreSplitState(state: unknown, memory: GuestMemory): SplitQueueState {
  if (!isRecord(state)) invalid('not an object');
  if (state.version !== 1) invalid(`unsupported version ${String(state.version)}`);
  if (state.layout !== 'split') invalid(`layout must be 'split'`);
  const ringIn = state.ring;
  if (!isRecord(ringIn)) invalid('ring must be an object');
  const size = ringIn.size;
  if (typeof size !== 'number' || !isValidSplitQueueSize(size)) invalid('ring.size must be a power of two in 1..32768', { length: Number(size) });
  const ring: SplitQueueLayout = {
    size,
    descTable: Number(ringIn.descTable),
    availRing: Number(ringIn.availRing),
    usedRing: Number(ringIn.usedRing),
  };
  if (typeof ringIn.descTable !== 'number' || typeof ringIn.availRing !== 'number' || typeof ringIn.usedRing !== 'number') {
    invalid('ring addresses must be numbers');
  }
  try {
    validateSplitLayout(ring, memory);
  } catch (cause) {
    invalid('ring areas are invalid for this guest memory', {}, cause);
  }
  const f = state.features;
  if (!isRecord(f)) invalid('features must be an object');
  const features: QueueFeatures = {
    eventIdx: flag(f.eventIdx, 'features.eventIdx'),
    indirect: flag(f.indirect, 'features.indirect'),
    inOrder: flag(f.inOrder, 'features.inOrder'),
  };
  const nextAvail = u16(state.nextAvail, 'nextAvail');
  const nextUsed = u16(state.nextUsed, 'nextUsed');
  const broken = flag(state.broken, 'broken');
  const inFlightIn = state.inFlight;
  if (!Array.isArray(inFlightIn)) invalid('inFlight must be an array');
  // Bound before iterating: never more in flight than the queue holds.
  if (inFlightIn.length > size) invalid(`inFlight lists ${inFlightIn.length} heads, more than the queue size ${size}`);
  const seen = new Uint8Array(size);
  const inFlight: number[] = [];
  for (const head of inFlightIn as unknown[]) {
    if (typeof head !== 'number' || !Number.isInteger(head) || head < 0 || head >= size) invalid('inFlight head out of range', { head: Number(head) });
    if (seen[head] === 1) invalid('inFlight lists a head twice', { head });
    seen[head] = 1;
    inFlight.push(head);
  }
  if (((nextAvail - nextUsed) & 0xffff) > size) invalid('nextAvail is more than the queue size ahead of nextUsed');
  if (!broken && inFlight.length !== ((nextAvail - nextUsed) & 0xffff)) {
    invalid(`inFlight holds ${inFlight.length} heads but nextAvail - nextUsed is ${(nextAvail - nextUsed) & 0xffff}`);
  }
  return { version: 1, layout: 'split', ring, features, nextAvail, nextUsed, inFlight, broken };
}
