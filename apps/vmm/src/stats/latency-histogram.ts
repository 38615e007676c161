/** Sub-buckets per power of two: percentiles are within 1/64 (1.6 %) of the true value. */
const SUB_BUCKET_BITS = 6;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
/** Largest recordable latency: 2^42 ns (~73 minutes); longer samples are clamped to it. */
const MAX_EXPONENT = 42;
const BUCKETS = (MAX_EXPONENT - SUB_BUCKET_BITS + 2) * SUB_BUCKETS;
export const MAX_LATENCY_NS = 2 ** MAX_EXPONENT - 1;

function bucketOf(value: number): number {
  if (value < SUB_BUCKETS) return value;
  const exponent = Math.floor(Math.log2(value));
  const shift = exponent - SUB_BUCKET_BITS;
  const sub = Math.floor(value / 2 ** shift) - SUB_BUCKETS; // 0..63
  return (shift + 1) * SUB_BUCKETS + sub;
}

/** Smallest and largest value in a bucket. */
function bucketRange(index: number): [number, number] {
  if (index < SUB_BUCKETS) return [index, index];
  const shift = Math.floor(index / SUB_BUCKETS) - 1;
  const sub = index % SUB_BUCKETS;
  const low = (SUB_BUCKETS + sub) * 2 ** shift;
  return [low, low + 2 ** shift - 1];
}

/**
 * A fixed-size log-linear latency histogram (HdrHistogram's idea with 6 significant bits): memory
 * does not grow with the number of samples, so a bench may run for hours. Samples are integer
 * nanoseconds.
 */
export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  min = Infinity;
  max = 0;
  sum = 0;

  /** Records one latency in nanoseconds (negative and fractional values are rounded into range). */
  record(ns: number): void {
    const value = Math.min(MAX_LATENCY_NS, Math.max(0, Math.round(ns)));
    this.counts[bucketOf(value)]!++;
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  /** Adds another histogram's samples (jobs merge into one report). */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /**
   * The value at percentile `p` (0–100): the sample of rank ceil(p/100 * count) in sorted order,
   * to within 1/64 of its value (the middle of its bucket, clamped to the observed min and max).
   */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const [low, high] = bucketRange(i);
        return Math.min(this.max, Math.max(this.min, (low + high) / 2));
      }
    }
    return this.max;
  }

  /** A plain serialisable form (a worker posts its histogram to the VMM). */
  toJSON(): LatencyHistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!]);
    return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum };
  }

  /** Rebuilds a histogram from {@link toJSON}'s output (ignoring out-of-range bucket numbers). */
  static fromJSON(data: LatencyHistogramData): LatencyHistogram {
    const histogram = new LatencyHistogram();
    for (const [index, count] of data.buckets) {
      if (Number.isInteger(index) && index >= 0 && index < BUCKETS) histogram.counts[index] = count;
    }
    histogram.count = data.count;
    histogram.min = data.count === 0 ? Infinity : data.min;
    histogram.max = data.max;
    histogram.sum = data.sum;
    return histogram;
  }
}

export interface LatencyHistogramData {
  readonly buckets: readonly (readonly [number, number])[];
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly sum: number;
}
