/** Binary multipliers of the size suffixes QEMU accepts (qemu_strtosz: k, M, G, T, P; 1024-based). */
const SIZE_SUFFIXES: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
};

const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?$/i;

/**
 * Parses a size such as `256M`, `4k`, `1GiB`, `1.5G` or `512` (bytes), QEMU-style binary units.
 * Returns undefined when the text is not a size or the result is not a safe integer.
 */
export function parseSize(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const multiplier = SIZE_SUFFIXES[match[2]!.toLowerCase()]!;
  const value = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(value)) return undefined;
  return value;
}

/** Formats a byte count with the largest binary unit that divides it, or one decimal otherwise. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${units[unit]}`;
}

const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/;

/**
 * Parses a duration as fio does for `runtime`: a bare number is seconds; `ms`, `s`, `m` suffixes.
 * Returns milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const ms = unit === 'ms' ? value : unit === 's' ? value * 1000 : value * 60_000;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}
