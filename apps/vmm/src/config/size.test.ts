import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSize, parseDuration, parseSize } from './size.js';

describe('parseSize', () => {
  it('reads QEMU binary suffixes', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('4k')).toBe(4096);
    expect(parseSize('4K')).toBe(4096);
    expect(parseSize('256M')).toBe(256 * 2 ** 20);
    expect(parseSize('1G')).toBe(2 ** 30);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('64KB')).toBe(65536);
  });
  it('rejects what is not a size', () => {
    for (const bad of ['', 'M', '-1G', '1X', '1..2G', 'ten', '99999999999P']) expect(parseSize(bad), bad).toBeUndefined();
  });
  it('reads back every byte count formatSize prints in whole units (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 1023 }), (shift, n) => {
        const bytes = n * 2 ** (shift - (shift % 10));
        const text = formatSize(bytes).replace(' ', '');
        expect(parseSize(text)).toBe(bytes);
      }),
      { numRuns: 200 },
    );
  });
});

describe('parseDuration', () => {
  it('reads seconds by default, as fio runtime', () => {
    expect(parseDuration('2')).toBe(2000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1m')).toBe(60_000);
    expect(parseDuration('soon')).toBeUndefined();
  });
});
