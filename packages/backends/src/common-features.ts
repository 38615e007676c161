import {
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureBits,
  type Features,
} from '@virtio-ts/device';

/** Transport-independent features every backend here offers (§6). */
export interface RingFeatureOptions {
  /** Offer VIRTIO_F_RING_PACKED (§2.8). Default false. */
  readonly packed?: boolean;
  /** Offer VIRTIO_RING_F_EVENT_IDX (§2.7.10). Default true. */
  readonly eventIdx?: boolean;
  /** Offer VIRTIO_RING_F_INDIRECT_DESC (§2.7.5.3). Default true. */
  readonly indirect?: boolean;
}

/**
 * VIRTIO_F_VERSION_1 plus the ring features. VIRTIO_F_IN_ORDER is never offered: the devices
 * here complete requests out of order.
 */
export function ringFeatures(options: RingFeatureOptions = {}): Features {
  let features = featureBits(VIRTIO_F_VERSION_1);
  if (options.eventIdx ?? true) features |= featureBits(VIRTIO_RING_F_EVENT_IDX);
  if (options.indirect ?? true) features |= featureBits(VIRTIO_RING_F_INDIRECT_DESC);
  if (options.packed ?? false) features |= featureBits(VIRTIO_F_RING_PACKED);
  return features;
}
