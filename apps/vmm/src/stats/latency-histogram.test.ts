import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LatencyHistogram, type LatencyHistogramData } from './latency-histogram.js';

function exactPercentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

describe('LatencyHistogram', () => {
  it('is exact below 64 ns and for a single sample', () => {
    const h = new LatencyHistogram();
    for (const v of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) h.record(v);
    expect(h.percentile(50)).toBe(5);
    expect(h.percentile(99)).toBe(10);
    const one = new LatencyHistogram();
    one.record(123_456);
    expect(one.percentile(50)).toBe(123_456);
    expect(one.percentile(99.9)).toBe(123_456);
  });

  it('reports p50/p99/p99.9 within 1/64 of the exact sample percentile (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 36 }), { minLength: 1, maxLength: 400 }), fc.constantFrom(50, 90, 99, 99.9, 100), (samples, p) => {
        const h = new LatencyHistogram();
        for (const s of samples) h.record(s);
        const exact = exactPercentile([...samples].sort((a, b) => a - b), p);
        expect(Math.abs(h.percentile(p) - exact)).toBeLessThanOrEqual(exact / 64 + 0.5);
        expect(h.count).toBe(samples.length);
        expect(h.max).toBe(Math.max(...samples));
      }),
      { numRuns: 300 },
    );
  });

  it('merges and survives a JSON round trip (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(10 ** 9)), fc.array(fc.nat(10 ** 9)), (a, b) => {
        const ha = new LatencyHistogram();
        const hb = new LatencyHistogram();
        const all = new LatencyHistogram();
        for (const s of a) {
          ha.record(s);
          all.record(s);
        }
        for (const s of b) {
          hb.record(s);
          all.record(s);
        }
        const merged = LatencyHistogram.fromJSON(JSON.parse(JSON.stringify(ha.toJSON())) as LatencyHistogramData);
        merged.merge(LatencyHistogram.fromJSON(hb.toJSON()));
        for (const p of [50, 99, 99.9]) expect(merged.percentile(p)).toBe(all.percentile(p));
        expect(merged.count).toBe(all.count);
      }),
      { numRuns: 100 },
    );
  });
});
