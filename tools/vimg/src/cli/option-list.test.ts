import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { joinOptionLists, parseOnOff, parseOptionList } from './option-list.js';

describe('QEMU option lists (util/qemu-option.c)', () => {
  it('key=value pairs in order', () => {
    expect([...parseOptionList('cluster_size=65536,compat=1.1')]).toEqual([['cluster_size', '65536'], ['compat', '1.1']]);
  });

  it('",," is a literal comma in a value', () => {
    expect(parseOptionList('backing_file=a,,b.qcow2,backing_fmt=qcow2').get('backing_file')).toBe('a,b.qcow2');
  });

  it('a bare key means on; help asks for help', () => {
    expect(parseOptionList('lazy_refcounts').get('lazy_refcounts')).toBe('on');
    expect(parseOptionList('help').get('help')).toBe('help');
    expect(parseOptionList('?').get('?')).toBe('help');
  });

  it('the last duplicate wins', () => {
    expect(parseOptionList('compat=0.10,compat=1.1').get('compat')).toBe('1.1');
  });

  it('empty lists and trailing commas', () => {
    expect(parseOptionList('').size).toBe(0);
    expect(parseOptionList('a=1,').get('a')).toBe('1');
    expect(() => parseOptionList('=1')).toThrow(/INVALID_OPTION/);
  });

  it('repeated -o are joined with commas', () => {
    expect(joinOptionLists(['a=1', '', 'b=2'])).toBe('a=1,b=2');
  });

  it('on/off', () => {
    expect(parseOnOff('x', 'on')).toBe(true);
    expect(parseOnOff('x', 'off')).toBe(false);
    expect(() => parseOnOff('x', 'maybe')).toThrow(/INVALID_OPTION/);
  });

  it('property: values with commas survive escaping', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 8 }).filter((s) => /^[a-z_]+$/.test(s)), fc.string({ maxLength: 16 }), (key, value) => {
        const escaped = value.replace(/,/g, ',,');
        expect(parseOptionList(`${key}=${escaped}`).get(key)).toBe(value);
      }),
      { numRuns: 300 },
    );
  });
});
