import type { QueueFeatures } from '@virtio-ts/ring';
import { VIRTIO_F_IN_ORDER, VIRTIO_F_RING_PACKED, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '@virtio-ts/ring';

/**
 * Feature sets are 64-bit masks held as `bigint` (bit n = feature n, §2.2). Transports move them
 * as 32-bit words (`device_feature_select` / `DeviceFeaturesSel`); {@link featureWord} and
 * {@link withFeatureWord} convert.
 */
export type Features = bigint;

const MASK_64 = (1n << 64n) - 1n;

/** The mask of feature bit `bit` (0..63). */
export function featureBit(bit: number): Features {
  if (!Number.isInteger(bit) || bit < 0 || bit > 63) throw new RangeError(`feature bit ${bit} is not in 0..63`);
  return 1n << BigInt(bit);
}

/** The mask of several feature bits. */
export function featureBits(...bits: readonly number[]): Features {
  let mask = 0n;
  for (const bit of bits) mask |= featureBit(bit);
  return mask;
}

/** True when `features` has bit `bit`. */
export function hasFeature(features: Features, bit: number): boolean {
  return (features & featureBit(bit)) !== 0n;
}

/** 32-bit word `select` of a feature set (§4.1.4.3: bits select*32 .. select*32+31); 0 for select >= 2. */
export function featureWord(features: Features, select: number): number {
  if (!Number.isInteger(select) || select < 0 || select > 1) return 0;
  return Number((features >> BigInt(select * 32)) & 0xffff_ffffn);
}

/** `features` with word `select` replaced by `value` (selects >= 2 leave it unchanged). */
export function withFeatureWord(features: Features, select: number, value: number): Features {
  if (!Number.isInteger(select) || select < 0 || select > 1) return features;
  const shift = BigInt(select * 32);
  const cleared = features & ~(0xffff_ffffn << shift) & MASK_64;
  return cleared | (BigInt(value >>> 0) << shift);
}

/** The ring features a negotiated feature set turns on (they are passed to the queue constructors). */
export function queueFeaturesOf(features: Features): QueueFeatures {
  return {
    eventIdx: hasFeature(features, VIRTIO_RING_F_EVENT_IDX),
    indirect: hasFeature(features, VIRTIO_RING_F_INDIRECT_DESC),
    inOrder: hasFeature(features, VIRTIO_F_IN_ORDER),
  };
}

/** The ring layout a negotiated feature set selects (§2.8: packed iff VIRTIO_F_RING_PACKED). */
export function queueLayoutOf(features: Features): 'split' | 'packed' {
  return hasFeature(features, VIRTIO_F_RING_PACKED) ? 'packed' : 'split';
}
