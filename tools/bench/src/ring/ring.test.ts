import { describe, expect, it } from 'vitest';
import { baselineRoundTrips, flatRing } from './baseline.js';
import { contractFloorRoundTripper } from './floor.js';
import { packedBaselineRoundTrips, packedRoundTripper } from './packed.js';
import { splitRoundTripper } from './split.js';

describe('ring bench measurements', () => {
  it('every measurement completes its round trips (the baselines check none is lost) and reports a rate', () => {
    for (const segments of [1, 4]) {
      expect(splitRoundTripper(segments)(10_000)).toBeGreaterThan(0);
      expect(packedRoundTripper(segments)(10_000)).toBeGreaterThan(0);
      expect(baselineRoundTrips(flatRing(new SharedArrayBuffer(1 << 16), 256), segments, 10_000, 0x8000)).toBeGreaterThan(0);
      expect(packedBaselineRoundTrips(new SharedArrayBuffer(1 << 16), 256, segments, 10_000, 0x8000)).toBeGreaterThan(0);
    }
    // The contract floor checks that every token comes back in order (it throws otherwise).
    expect(contractFloorRoundTripper()(10_000)).toBeGreaterThan(0);
  });
});
