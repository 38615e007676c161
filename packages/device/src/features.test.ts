import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VIRTIO_F_IN_ORDER, VIRTIO_F_RING_PACKED, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_VERSION_1 } from './constants.js';
import { featureBit, featureBits, featureWord, hasFeature, queueFeaturesOf, queueLayoutOf, withFeatureWord } from './features.js';

describe('feature words', () => {
  it('4.1.4.3: device_feature word `select` holds bits select*32 .. select*32+31, 0 past word 1', () => {
    const f = featureBits(0, 31, VIRTIO_F_VERSION_1, 63);
    expect(featureWord(f, 0)).toBe(0x8000_0001);
    expect(featureWord(f, 1)).toBe(0x8000_0001);
    expect(featureWord(f, 2)).toBe(0);
    expect(featureWord(f, 0xffff_ffff)).toBe(0);
  });

  it('round-trips any 64-bit set through its two words', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (f, g) => {
        let h = withFeatureWord(g, 0, featureWord(f, 0));
        h = withFeatureWord(h, 1, featureWord(f, 1));
        expect(h).toBe(f);
        expect(withFeatureWord(f, 2, 0xffff_ffff)).toBe(f);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects bits outside 0..63', () => {
    expect(() => featureBit(64)).toThrow(RangeError);
    expect(() => featureBit(-1)).toThrow(RangeError);
    expect(hasFeature(featureBit(40), 40)).toBe(true);
  });

  it('6: the ring features of a negotiated set reach the queue options', () => {
    expect(queueFeaturesOf(featureBits(VIRTIO_RING_F_EVENT_IDX))).toEqual({ eventIdx: true, indirect: false, inOrder: false });
    expect(queueFeaturesOf(featureBits(VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_IN_ORDER))).toEqual({ eventIdx: false, indirect: true, inOrder: true });
    expect(queueLayoutOf(featureBits(VIRTIO_F_RING_PACKED))).toBe('packed');
    expect(queueLayoutOf(0n)).toBe('split');
  });
});
