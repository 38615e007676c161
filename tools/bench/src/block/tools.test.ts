import { describe, expect, it } from 'vitest';
import { benchSeconds } from './tools.js';

describe('block suite: parsing bench output', () => {
  it('reads "Run completed in X seconds." as vimg and qemu-img print it', () => {
    expect(benchSeconds('Sending 1000 read requests, 4096 bytes each, 4 in parallel (starting at offset 0, step size 4096)\nRun completed in 0.047 seconds.\n')).toBe(0.047);
  });
  it('a run below the printed resolution counts as 0.5 ms; a missing line throws', () => {
    expect(benchSeconds('Run completed in 0.000 seconds.\n')).toBe(0.0005);
    expect(() => benchSeconds('vimg: error [IO]\n')).toThrow(/no "Run completed" line/);
  });
});
