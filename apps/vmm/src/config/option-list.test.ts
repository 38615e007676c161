import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VmmError } from '../errors.js';
import { formatOptionList, parseOptionList } from './option-list.js';

const entries = (text: string, implied?: string) => [...parseOptionList(text, implied)];

describe('parseOptionList (QEMU util/qemu-option.c rules)', () => {
  it('splits key=value pairs on commas', () => {
    expect(entries('format=qcow2,queues=2')).toEqual([
      ['format', 'qcow2'],
      ['queues', '2'],
    ]);
  });
  it('reads ",," as a literal comma in a value', () => {
    expect(entries('path=a,,b.img,format=raw')).toEqual([
      ['path', 'a,b.img'],
      ['format', 'raw'],
    ]);
  });
  it('gives a first element without "=" to the implied key', () => {
    expect(entries('disk.img,format=raw', 'path')).toEqual([
      ['path', 'disk.img'],
      ['format', 'raw'],
    ]);
  });
  it('reads a later element without "=" as key=on', () => {
    expect(entries('disk.img,readonly', 'path')).toEqual([
      ['path', 'disk.img'],
      ['readonly', 'on'],
    ]);
    expect(entries('readonly')).toEqual([['readonly', 'on']]);
  });
  it('lets the last duplicate win', () => {
    expect(entries('queues=1,format=raw,queues=4')).toEqual([
      ['queues', '4'],
      ['format', 'raw'],
    ]);
  });
  it('keeps "=" after the first one inside the value', () => {
    expect(entries('path=a=b')).toEqual([['path', 'a=b']]);
  });
  it('reads help and ? as a help request, even with an implied key', () => {
    expect(entries('help', 'path')).toEqual([['help', 'on']]);
    expect(entries('?', 'path')).toEqual([['help', 'on']]);
  });
  it('accepts an empty list and one trailing comma', () => {
    expect(entries('')).toEqual([]);
    expect(entries('format=raw,')).toEqual([['format', 'raw']]);
  });
  it('rejects an empty key with INVALID_OPTION', () => {
    for (const bad of ['=x', 'a=1,=x', ',a=1', 'a=1,,,,=2,']) {
      let error: unknown;
      try {
        parseOptionList(bad);
      } catch (e) {
        error = e;
      }
      if (bad === 'a=1,,,,=2,') {
        // ",,,," is two literal commas: one value "1,,=2"
        expect(error).toBeUndefined();
        continue;
      }
      expect(VmmError.isInstance(error) && error.code === 'INVALID_OPTION', bad).toBe(true);
    }
  });
  it('round-trips any map through formatOptionList (property)', () => {
    // A key cannot start with a comma: after a separator, ",," reads as a literal comma of the
    // previous value (QEMU's greedy rule), so such a list is ambiguous in QEMU too.
    const key = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !k.includes('=') && !k.startsWith(','));
    fc.assert(
      fc.property(fc.dictionary(key, fc.string({ maxLength: 12 }), { maxKeys: 6 }), (record) => {
        const map = new Map(Object.entries(record));
        expect([...parseOptionList(formatOptionList(map))]).toEqual([...map]);
      }),
      { numRuns: 300 },
    );
  });
});
