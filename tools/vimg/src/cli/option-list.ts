import { VimgError } from '../errors.js';

/**
 * Parses a QEMU `key=value,...` option list as util/qemu-option.c does:
 * - `,,` is a literal comma inside a value;
 * - a bare `foo` means `foo=on` (and `nofoo` does not mean off: QEMU removed that);
 * - `help` or `?` asks for help;
 * - the last duplicate wins.
 * Several `-o` occurrences are joined with `,` first, as qemu-img does (accumulate_options).
 */
export function parseOptionList(text: string): Map<string, string> {
  const options = new Map<string, string>();
  let index = 0;
  while (index < text.length) {
    const [key, afterKey] = readUntil(text, index, ['=', ',']);
    if (afterKey < text.length && text[afterKey] === '=') {
      const [value, afterValue] = readUntil(text, afterKey + 1, [',']);
      setOption(options, key, value);
      index = afterValue + 1;
    } else {
      if (key === '') throw new VimgError('INVALID_OPTION', `Invalid option list '${text}': empty option name`);
      setOption(options, key, key === 'help' || key === '?' ? 'help' : 'on');
      index = afterKey + 1;
    }
  }
  return options;
}

function setOption(options: Map<string, string>, key: string, value: string): void {
  if (key === '') throw new VimgError('INVALID_OPTION', `Invalid option list: empty option name before '=${value}'`);
  options.delete(key); // keep insertion order of the last occurrence
  options.set(key, value);
}

/** Reads up to the first unescaped stop character; `,,` is a literal comma. */
function readUntil(text: string, start: number, stops: readonly string[]): [string, number] {
  let out = '';
  let index = start;
  while (index < text.length) {
    const char = text[index]!;
    if (char === ',' && text[index + 1] === ',' && stops.length === 1) {
      out += ',';
      index += 2;
      continue;
    }
    if (stops.includes(char)) break;
    out += char;
    index += 1;
  }
  return [out, index];
}

/** Parses an on/off option value as QEMU's parse_option_bool. */
export function parseOnOff(name: string, value: string): boolean {
  if (value === 'on' || value === 'yes' || value === 'true') return true;
  if (value === 'off' || value === 'no' || value === 'false') return false;
  throw new VimgError('INVALID_OPTION', `Parameter '${name}' expects 'on' or 'off'`, { option: name });
}

/** Joins repeated `-o` values the way qemu-img's accumulate_options does. */
export function joinOptionLists(lists: readonly string[]): string {
  return lists.filter((list) => list !== '').join(',');
}
