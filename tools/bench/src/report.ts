/** One line of a benchmark report: our figure beside a peer's (or a baseline's). */
export interface Row {
  /** What was measured, e.g. `split 1-desc round trips, 1 thread`. */
  readonly row: string;
  /** Unit of `ours` and `peer`, e.g. `ops/s`, `MB/s`. Higher is better. */
  readonly unit: string;
  readonly ours: number;
  /** The peer's figure, or null when there is no peer for this row. */
  readonly peer: number | null;
  /** `ours / peer` (above 1: we are faster), or null without a peer. */
  readonly ratio: number | null;
}

/** Builds a row, computing the ratio. */
export function row(name: string, unit: string, ours: number, peer: number | null): Row {
  return { row: name, unit, ours, peer, ratio: peer === null || peer === 0 ? null : ours / peer };
}

function formatNumber(value: number): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(2)} k`;
  return value.toFixed(2);
}

/** A readable table: row, ours, peer, ratio, unit. */
export function formatTable(rows: readonly Row[], peerTitle = 'peer'): string {
  const header = ['row', 'ours', peerTitle, 'ratio', 'unit'];
  const lines = rows.map((r) => [
    r.row,
    formatNumber(r.ours),
    r.peer === null ? '-' : formatNumber(r.peer),
    r.ratio === null ? '-' : r.ratio.toFixed(2),
    r.unit,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(format)].join('\n');
}

/** One JSON object per line with exactly the fields row, unit, ours, peer, ratio. */
export function formatJsonLines(rows: readonly Row[]): string {
  return rows.map((r) => JSON.stringify({ row: r.row, unit: r.unit, ours: r.ours, peer: r.peer, ratio: r.ratio })).join('\n');
}
