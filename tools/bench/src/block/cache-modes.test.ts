import { describe, expect, it } from 'vitest';
import { benchCacheModes } from './cache-modes.js';

describe('block bench cache modes', () => {
  it('runs writeback and none by default, a named subset in order, and refuses unknown names', () => {
    expect(benchCacheModes(undefined)).toEqual(['writeback', 'none']);
    expect(benchCacheModes('none')).toEqual(['none']);
    expect(benchCacheModes('none, writeback')).toEqual(['writeback', 'none']);
    expect(() => benchCacheModes('direct')).toThrow(/unknown cache mode 'direct'/);
  });
});
