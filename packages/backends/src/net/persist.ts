import { BackendError } from '../errors.js';
import { formatMac, isGroupAddress, parseMac } from '@virtio-ts/device';
import { MAC_TABLE_ENTRIES, type RxFilterState } from './rx-filter.js';

/**
 * Serialisable state of a {@link NetDevice} beyond its queues: what the driver configured
 * through the control queue, and the link. Version history: 1 — first version.
 *
 * Receive buffers the device holds for a frame that did not fit yet are not part of it: take a
 * snapshot while the back-end is quiet (they are then returned or never popped).
 */
export interface NetDeviceState {
  readonly version: 1;
  /** The current MAC (config `mac`, possibly set with MAC_ADDR_SET). */
  readonly mac: string;
  readonly linkUp: boolean;
  /** VIRTIO_NET_S_ANNOUNCE pending. */
  readonly announce: boolean;
  /** Queue pairs in use (VQ_PAIRS_SET), 1..max_virtqueue_pairs. */
  readonly queuePairs: number;
  /** GUEST_* offload bits enabled (GUEST_OFFLOADS_SET), as a bit mask of feature numbers < 32. */
  readonly guestOffloads: number;
  readonly filter: RxFilterState;
}

/** Validates an untrusted snapshot (H16); throws BackendError INVALID_STATE. */
export function restoreNetState(state: unknown, limits: { maxQueuePairs: number }): NetDeviceState {
  const fail = (field: string, message: string): never => {
    throw new BackendError('INVALID_STATE', `net state: ${field} ${message}`, { device: 'net', field });
  };
  const object = (value: unknown, field: string): Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : fail(field, 'is not an object');
  const bool = (value: unknown, field: string): boolean => (typeof value === 'boolean' ? value : fail(field, 'is not a boolean'));
  const mac = (value: unknown, field: string): string => {
    if (typeof value !== 'string') return fail(field, 'is not a MAC address string');
    try {
      return formatMac(parseMac(value));
    } catch {
      return fail(field, 'is not a MAC address');
    }
  };
  // The tables hold what the driver gave (MAC_TABLE_SET does not police which list an address is in).
  const macs = (value: unknown, field: string): string[] => {
    if (!Array.isArray(value) || value.length > MAC_TABLE_ENTRIES) return fail(field, `is not a list of at most ${MAC_TABLE_ENTRIES} MAC addresses`);
    return value.map((v, i) => mac(v, `${field}[${i}]`));
  };
  const s = object(state, 'state');
  if (s.version !== 1) return fail('version', `is ${JSON.stringify(s.version)}, expected 1`);
  const own = mac(s.mac, 'mac');
  if (isGroupAddress(parseMac(own))) fail('mac', 'is a multicast address');
  const pairs = s.queuePairs;
  if (typeof pairs !== 'number' || !Number.isInteger(pairs) || pairs < 1 || pairs > limits.maxQueuePairs) {
    fail('queuePairs', `is not an integer in 1..${limits.maxQueuePairs}`);
  }
  const offloads = s.guestOffloads;
  if (typeof offloads !== 'number' || !Number.isInteger(offloads) || offloads < 0 || offloads > 0xffff_ffff) fail('guestOffloads', 'is not a 32-bit mask');
  const f = object(s.filter, 'filter');
  const filter: RxFilterState = {
    promisc: bool(f.promisc, 'filter.promisc'),
    allmulti: bool(f.allmulti, 'filter.allmulti'),
    alluni: bool(f.alluni, 'filter.alluni'),
    nomulti: bool(f.nomulti, 'filter.nomulti'),
    nouni: bool(f.nouni, 'filter.nouni'),
    nobcast: bool(f.nobcast, 'filter.nobcast'),
    unicast: macs(f.unicast, 'filter.unicast'),
    multicast: macs(f.multicast, 'filter.multicast'),
    unicastOverflow: bool(f.unicastOverflow, 'filter.unicastOverflow'),
    multicastOverflow: bool(f.multicastOverflow, 'filter.multicastOverflow'),
  };
  return {
    version: 1,
    mac: own,
    linkUp: bool(s.linkUp, 'linkUp'),
    announce: bool(s.announce, 'announce'),
    queuePairs: pairs as number,
    guestOffloads: offloads as number,
    filter,
  };
}
