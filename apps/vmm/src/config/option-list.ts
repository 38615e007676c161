import { VmmError } from '../errors.js';

/** A parsed QEMU-style option list: keys in first-seen order, the last duplicate's value. */
export type OptionList = ReadonlyMap<string, string>;

/** Longest option list accepted: a command line is not a place for megabytes. */
const MAX_OPTION_LIST_LENGTH = 64 * 1024;

/**
 * Parses a QEMU-style `key=value,...` option list with QEMU's own rules (util/qemu-option.c):
 * - `,,` is a literal comma inside a key or a value;
 * - when `impliedKey` is given, a first element without `=` is that key's value
 *   (`--blk disk.img,format=raw` is `path=disk.img,format=raw`);
 * - any other element without `=` is a flag: `foo` means `foo=on`;
 * - the last duplicate wins;
 * - `help` (or `?`) alone is returned as the key `help` with value `on`.
 *
 * Throws VmmError INVALID_OPTION on an empty key (`,=x`, `=x`).
 *
 * @example
 * ```ts
 * parseOptionList('a.img,,v2,format=qcow2,readonly', 'path');
 * // Map { path → 'a.img,v2', format → 'qcow2', readonly → 'on' }
 * ```
 */
export function parseOptionList(text: string, impliedKey?: string): OptionList {
  if (text.length > MAX_OPTION_LIST_LENGTH) {
    throw new VmmError('INVALID_OPTION', `option list is longer than ${MAX_OPTION_LIST_LENGTH} characters`);
  }
  const result = new Map<string, string>();
  const elements = splitElements(text);
  elements.forEach((element, index) => {
    if (element.equals < 0) {
      if (index === 0 && impliedKey !== undefined && element.text !== 'help' && element.text !== '?') {
        setLast(result, impliedKey, element.text);
        return;
      }
      // An empty list, or one trailing comma (QEMU skips the separator after the last value).
      if (element.text === '' && index === elements.length - 1) return;
      if (element.text === '') throw new VmmError('INVALID_OPTION', `empty element in option list "${text}"`);
      setLast(result, element.text === '?' ? 'help' : element.text, 'on');
      return;
    }
    const key = element.text.slice(0, element.equals);
    const value = element.text.slice(element.equals + 1);
    if (key === '') throw new VmmError('INVALID_OPTION', `empty key in option list "${text}"`);
    setLast(result, key, value);
  });
  return result;
}

/** The last duplicate wins; the key keeps its first position. */
function setLast(map: Map<string, string>, key: string, value: string): void {
  map.set(key, value);
}

interface Element {
  /** The element with `,,` unescaped. */
  readonly text: string;
  /** Index of the first unescaped `=` in `text`, or -1. */
  readonly equals: number;
}

function splitElements(text: string): Element[] {
  const elements: Element[] = [];
  let current = '';
  let equals = -1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === ',') {
      if (text[i + 1] === ',') {
        current += ',';
        i++;
        continue;
      }
      elements.push({ text: current, equals });
      current = '';
      equals = -1;
      continue;
    }
    if (ch === '=' && equals < 0) equals = current.length;
    current += ch;
  }
  elements.push({ text: current, equals });
  return elements;
}

/** Formats an option list back into text that {@link parseOptionList} reads as the same map. */
export function formatOptionList(options: OptionList): string {
  const parts: string[] = [];
  for (const [key, value] of options) parts.push(`${key.replaceAll(',', ',,')}=${value.replaceAll(',', ',,')}`);
  return parts.join(',');
}
