import { parseOnOff } from '../cli/option-list.js';
import { parseSize } from '../cli/size.js';
import { VimgError } from '../errors.js';

/** Validated `-o` options of a qcow2 image (qemu-img's names, typed). */
export interface Qcow2CreateOptions {
  readonly clusterSize: number;
  readonly compat: '0.10' | '1.1';
  readonly lazyRefcounts: boolean;
  readonly extendedL2: boolean;
  readonly refcountBits: number;
  readonly compressionType: 'zlib' | 'zstd';
  readonly preallocation: 'off' | 'metadata' | 'falloc' | 'full';
  readonly backingFile?: string;
  readonly backingFormat?: string;
}

/** Validated `-o` options of a raw image. */
export interface RawCreateOptions {
  readonly preallocation: 'off' | 'falloc' | 'full';
}

export const FORMATS = ['raw', 'qcow2'] as const;
export type ImageFormat = (typeof FORMATS)[number];

const QCOW2_OPTIONS = ['backing_file', 'backing_fmt', 'cluster_size', 'compat', 'compression_type', 'extended_l2', 'lazy_refcounts', 'preallocation', 'refcount_bits', 'size'];
const RAW_OPTIONS = ['preallocation', 'size'];

/** Checks `-f`/`-O`: vimg writes raw and qcow2. */
export function checkFormat(format: string): ImageFormat {
  if (!(FORMATS as readonly string[]).includes(format)) throw new VimgError('UNSUPPORTED', `Unknown file format '${format}' (vimg supports raw and qcow2)`);
  return format as ImageFormat;
}

function choice<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new VimgError('INVALID_OPTION', `Invalid value '${value}' for '${name}' (allowed values: ${allowed.join(', ')})`, { option: name });
  return value as T;
}

function rejectUnknown(options: ReadonlyMap<string, string>, known: readonly string[], format: string): void {
  for (const [key, value] of options) {
    if (key === 'help' || value === 'help') throw new VimgError('USAGE', `Supported ${format} options: ${known.join(', ')}`, { option: key });
    if (!known.includes(key)) throw new VimgError('INVALID_OPTION', `Invalid parameter '${key}'`, { option: key });
  }
}

/** Validates qcow2 creation options as qemu's qcow2_co_create_opts does, with its messages. */
export function parseQcow2Options(options: ReadonlyMap<string, string>): Qcow2CreateOptions {
  rejectUnknown(options, QCOW2_OPTIONS, 'qcow2');
  const clusterSize = options.has('cluster_size') ? parseSize(options.get('cluster_size')!) : 65536;
  if (clusterSize < 512 || clusterSize > 2 * 1024 * 1024 || (clusterSize & (clusterSize - 1)) !== 0) {
    throw new VimgError('INVALID_OPTION', 'Cluster size must be a power of two between 512 and 2048k', { option: 'cluster_size' });
  }
  const compatText = options.get('compat') ?? '1.1';
  const compat = compatText === 'v2' ? '0.10' : compatText === 'v3' ? '1.1' : choice('compat', compatText, ['0.10', '1.1'] as const);
  const lazyRefcounts = parseOnOff('lazy_refcounts', options.get('lazy_refcounts') ?? 'off');
  const extendedL2 = parseOnOff('extended_l2', options.get('extended_l2') ?? 'off');
  const refcountText = options.get('refcount_bits') ?? '16';
  const refcountBits = /^\d+$/.test(refcountText) ? Number(refcountText) : NaN;
  if (![1, 2, 4, 8, 16, 32, 64].includes(refcountBits)) throw new VimgError('INVALID_OPTION', 'Refcount width must be a power of two and may not exceed 64 bits', { option: 'refcount_bits' });
  const compressionType = choice('compression_type', options.get('compression_type') ?? 'zlib', ['zlib', 'zstd'] as const);
  const preallocation = choice('preallocation', options.get('preallocation') ?? 'off', ['off', 'metadata', 'falloc', 'full'] as const);
  if (compat === '0.10') {
    if (lazyRefcounts) throw new VimgError('INVALID_OPTION', 'Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)', { option: 'lazy_refcounts' });
    if (extendedL2) throw new VimgError('INVALID_OPTION', 'Extended L2 entries are only supported with compatibility level 1.1 and above (use compat=1.1 or greater)', { option: 'extended_l2' });
    if (refcountBits !== 16) throw new VimgError('INVALID_OPTION', 'Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)', { option: 'refcount_bits' });
    if (compressionType !== 'zlib') throw new VimgError('INVALID_OPTION', 'Compression type other than zlib requires compatibility level 1.1 or above (use compat=1.1 or greater)', { option: 'compression_type' });
  }
  if (extendedL2 && clusterSize < 16384) throw new VimgError('INVALID_OPTION', 'Extended L2 entries are only supported with cluster sizes of at least 16384 bytes', { option: 'extended_l2' });
  const backingFile = options.get('backing_file');
  const backingFormat = options.get('backing_fmt');
  if (backingFile === undefined && backingFormat !== undefined) throw new VimgError('INVALID_OPTION', 'Backing format specified without a backing file', { option: 'backing_fmt' });
  if (backingFile !== undefined && backingFormat === undefined) throw new VimgError('INVALID_OPTION', 'Backing file specified without backing format', { option: 'backing_fmt' });
  if (backingFile !== undefined && preallocation !== 'off') throw new VimgError('INVALID_OPTION', 'Backing file and preallocation can only be used at the same time if extended_l2 is on', { option: 'preallocation' });
  return {
    clusterSize,
    compat,
    lazyRefcounts,
    extendedL2,
    refcountBits,
    compressionType,
    preallocation,
    ...(backingFile !== undefined ? { backingFile } : {}),
    ...(backingFormat !== undefined ? { backingFormat } : {}),
  };
}

/** Validates raw creation options. */
export function parseRawOptions(options: ReadonlyMap<string, string>): RawCreateOptions {
  if (options.has('backing_file')) throw new VimgError('INVALID_OPTION', "'raw' does not support backing files", { option: 'backing_file' });
  rejectUnknown(options, RAW_OPTIONS, 'raw');
  return { preallocation: choice('preallocation', options.get('preallocation') ?? 'off', ['off', 'falloc', 'full'] as const) };
}

/** The line qemu-img create prints: `Formatting 'x', fmt=qcow2 cluster_size=65536 ...`. */
export function formattingLine(filename: string, format: ImageFormat, size: number, options: ReadonlyMap<string, string>): string {
  const parts = [`fmt=${format}`];
  if (format === 'qcow2') {
    const parsed = parseQcow2Options(options);
    parts.push(`cluster_size=${parsed.clusterSize}`, `extended_l2=${onOff(parsed.extendedL2)}`);
    if (options.has('preallocation')) parts.push(`preallocation=${parsed.preallocation}`);
    parts.push(`compression_type=${parsed.compressionType}`, `size=${size}`);
    if (parsed.backingFile !== undefined) parts.push(`backing_file=${parsed.backingFile}`);
    if (parsed.backingFormat !== undefined) parts.push(`backing_fmt=${parsed.backingFormat}`);
    if (options.has('compat')) parts.push(`compat=${parsed.compat}`);
    parts.push(`lazy_refcounts=${onOff(parsed.lazyRefcounts)}`, `refcount_bits=${parsed.refcountBits}`);
  } else {
    parts.push(`size=${size}`);
    if (options.has('preallocation')) parts.push(`preallocation=${parseRawOptions(options).preallocation}`);
  }
  return `Formatting '${filename}', ${parts.join(' ')}\n`;
}

function onOff(value: boolean): string {
  return value ? 'on' : 'off';
}
