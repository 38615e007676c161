/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs `ours` and `peer` alternately `repeats` times (the machine is noisy and shared: alternating
 * spreads the noise over both sides) and returns the median of each. Each function returns its
 * figure (higher is better).
 */
export async function alternate(
  repeats: number,
  ours: () => number | Promise<number>,
  peer: (() => number | Promise<number>) | null,
): Promise<{ ours: number; peer: number | null }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < repeats; i++) {
    // Swap the order every other repeat so neither side always runs first.
    if (i % 2 === 0 || peer === null) {
      a.push(await ours());
      if (peer !== null) b.push(await peer());
    } else {
      b.push(await peer());
      a.push(await ours());
    }
  }
  return { ours: median(a), peer: peer === null ? null : median(b) };
}
