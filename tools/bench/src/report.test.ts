import { describe, expect, it } from 'vitest';
import { alternate, median } from './measure.js';
import { formatJsonLines, formatTable, row } from './report.js';

describe('bench report', () => {
  it('--json prints one object per line with exactly row, unit, ours, peer, ratio', () => {
    const lines = formatJsonLines([row('a', 'ops/s', 10, 20), row('b', 'MB/s', 5, null)]).split('\n');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { row: 'a', unit: 'ops/s', ours: 10, peer: 20, ratio: 0.5 },
      { row: 'b', unit: 'MB/s', ours: 5, peer: null, ratio: null },
    ]);
    expect(Object.keys(JSON.parse(lines[0]!) as object)).toEqual(['row', 'unit', 'ours', 'peer', 'ratio']);
  });

  it('the table shows ours, the peer and the ratio', () => {
    const table = formatTable([row('split 1-desc', 'ops/s', 2_500_000, 5_000_000)], 'baseline');
    expect(table).toContain('baseline');
    expect(table).toContain('2.50 M');
    expect(table).toContain('5.00 M');
    expect(table).toContain('0.50');
  });

  it('median and alternate: the sides alternate and the median is reported', async () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    const order: string[] = [];
    let a = 0;
    let b = 100;
    const result = await alternate(
      4,
      () => (order.push('ours'), ++a),
      () => (order.push('peer'), ++b),
    );
    expect(order).toEqual(['ours', 'peer', 'peer', 'ours', 'ours', 'peer', 'peer', 'ours']);
    expect(result).toEqual({ ours: 2.5, peer: 102.5 });
  });
});
