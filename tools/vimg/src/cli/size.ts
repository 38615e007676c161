import { VimgError } from '../errors.js';

/** Largest size vimg accepts: qemu-img's limit is INT64_MAX; ours is 2^53 (exact in a double). */
export const MAX_SIZE = Number.MAX_SAFE_INTEGER;

const SUFFIXES: Record<string, number> = {
  b: 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
  e: 2 ** 60,
};

/**
 * Parses a size as qemu-img does (util/cutils.c qemu_strtosz): a decimal number, optionally with
 * a fraction, then an optional case-insensitive suffix B, K, M, G, T, P, E (powers of 1024). With
 * no suffix the number is `defaultUnit` bytes. The result must be a whole number of bytes.
 */
export function parseSize(text: string, defaultUnit = 1): number {
  const match = /^\s*(\d+)(\.\d+)?\s*([bkmgtpe])?$/i.exec(text);
  if (match === null) throw new VimgError('INVALID_SIZE', `Invalid size '${text}': expected a number with an optional k, M, G, T, P or E suffix`);
  const unit = match[3] === undefined ? defaultUnit : SUFFIXES[match[3].toLowerCase()]!;
  const whole = Number(match[1]!);
  const fraction = match[2] === undefined ? 0 : Number(`0${match[2]}`);
  if (fraction !== 0 && unit === 1) throw new VimgError('INVALID_SIZE', `Invalid size '${text}': a fraction needs a unit suffix`);
  const bytes = whole * unit + Math.round(fraction * unit);
  if (!Number.isSafeInteger(bytes) || bytes > MAX_SIZE) throw new VimgError('INVALID_SIZE', `Invalid size '${text}': too large (at most 2^53-1 bytes)`);
  return bytes;
}

/** A size with a sign, as `vimg resize` takes it: `+1G` grows, `-1G` shrinks, `1G` sets. */
export interface RelativeSize {
  readonly relative: -1 | 0 | 1;
  readonly bytes: number;
}

export function parseRelativeSize(text: string): RelativeSize {
  if (text.startsWith('+')) return { relative: 1, bytes: parseSize(text.slice(1)) };
  if (text.startsWith('-')) return { relative: -1, bytes: parseSize(text.slice(1)) };
  return { relative: 0, bytes: parseSize(text) };
}

const HUMAN_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/**
 * Formats a byte count as qemu's size_to_str (util/cutils.c): the largest power-of-1024 unit
 * that keeps the value below 1000 (so 1000 KiB shows as 0.977 MiB), three significant digits.
 */
export function formatSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  // qemu: "while (val >= 1000 && i < ...)": 1023 B shows as 0.999 KiB, 1000 B as 0.977 KiB.
  while (value >= 1000 && unit < HUMAN_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${formatG(value, 3)} ${HUMAN_UNITS[unit]!}`;
}

/**
 * C's printf `%0.*g`: `digits` significant digits, trailing zeros removed. Ties round to even,
 * as glibc does on exactly representable values (197120 bytes is 192.5 KiB and prints "192").
 */
export function formatG(value: number, digits: number): string {
  if (value === 0) return '0';
  const sign = value < 0 ? '-' : '';
  const magnitude = Math.abs(value);
  let exponent = Math.floor(Math.log10(magnitude));
  let mantissa = scaledRound(magnitude, digits - 1 - exponent);
  if (mantissa >= 10 ** digits) {
    exponent += 1;
    mantissa = scaledRound(magnitude, digits - 1 - exponent);
  }
  const text = String(mantissa).padStart(digits, '0');
  if (exponent < -4 || exponent >= digits) {
    const fraction = text.slice(1).replace(/0+$/, '');
    const exp = `${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
    return `${sign}${text[0]!}${fraction === '' ? '' : `.${fraction}`}e${exp}`;
  }
  const decimals = digits - 1 - exponent;
  if (decimals <= 0) return `${sign}${text}${'0'.repeat(-decimals)}`;
  const padded = text.padStart(decimals + 1, '0');
  const whole = padded.slice(0, padded.length - decimals);
  const fraction = padded.slice(padded.length - decimals).replace(/0+$/, '');
  return `${sign}${whole}${fraction === '' ? '' : `.${fraction}`}`;
}

/** round(value * 10^power) with ties to even. */
function scaledRound(value: number, power: number): number {
  const scaled = power >= 0 ? value * 10 ** power : value / 10 ** -power;
  const floor = Math.floor(scaled);
  const diff = scaled - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
