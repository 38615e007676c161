import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatG, formatSize, parseRelativeSize, parseSize } from './size.js';

describe('sizes (qemu_strtosz / size_to_str)', () => {
  it('suffixes are powers of 1024 and case-insensitive', () => {
    expect(parseSize('1k')).toBe(1024);
    expect(parseSize('1K')).toBe(1024);
    expect(parseSize('3m')).toBe(3 * 2 ** 20);
    expect(parseSize('1P')).toBe(2 ** 50);
    expect(parseSize('100b')).toBe(100);
    expect(parseSize('0.5k')).toBe(512);
  });

  it('rejects garbage, negatives, fractions without a unit and sizes past 2^53', () => {
    for (const bad of ['', 'k', '-1', '1.5', '1x', '1 G G', '9E']) expect(() => parseSize(bad)).toThrow(/INVALID_SIZE/);
  });

  it('relative sizes', () => {
    expect(parseRelativeSize('+1G')).toEqual({ relative: 1, bytes: 2 ** 30 });
    expect(parseRelativeSize('-512')).toEqual({ relative: -1, bytes: 512 });
  });

  it('size_to_str: three significant digits, switch unit at 1000', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(999)).toBe('999 B');
    expect(formatSize(1000)).toBe('0.977 KiB');
    expect(formatSize(4194304)).toBe('4 MiB');
    expect(formatSize(339968)).toBe('332 KiB');
    expect(formatSize(200704)).toBe('196 KiB');
    expect(formatSize(197120)).toBe('192 KiB');
    expect(formatSize(1536 * 2 ** 20)).toBe('1.5 GiB');
  });

  it('%g formatting', () => {
    expect(formatG(1.0, 3)).toBe('1');
    expect(formatG(12.345, 3)).toBe('12.3');
    expect(formatG(0.9765625, 3)).toBe('0.977');
    expect(formatG(999.5, 3)).toBe('1e+03');
  });

  it('property: a formatted size is within 0.5% of the value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 52 }), (bytes) => {
        const [number, unit] = formatSize(bytes).split(' ');
        const scale = 1024 ** ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'].indexOf(unit!);
        expect(Math.abs(Number(number) * scale - bytes) / bytes).toBeLessThan(0.005);
      }),
      { numRuns: 300 },
    );
  });

  it('property: parseSize(n + suffix) = n * unit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 }), fc.constantFrom(['', 1], ['k', 1024], ['M', 2 ** 20], ['G', 2 ** 30], ['T', 2 ** 40]), (n, [suffix, unit]) => {
        expect(parseSize(`${n}${suffix as string}`)).toBe(n * (unit));
      }),
      { numRuns: 200 },
    );
  });
});
