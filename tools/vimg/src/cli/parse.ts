import { Command, CommanderError } from 'commander';
import { VimgError } from '../errors.js';
import { joinOptionLists, parseOptionList } from './option-list.js';
import { parseRelativeSize, parseSize, type RelativeSize } from './size.js';

/** `--output=` values, as qemu-img's. */
export type OutputFormat = 'human' | 'json';
/** `-t`/`-T` cache modes, as qemu-img's. */
export type CacheMode = 'none' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe';

interface Common {
  /** `-f`: the image format; probed when absent. */
  readonly format?: string;
  readonly quiet: boolean;
  /** `--allow-backing FILE` (vimg only): backing files the user allows outside the image's directory. */
  readonly allowBacking: readonly string[];
}

export interface CreateCommand extends Common {
  readonly command: 'create';
  readonly format: string;
  /** `-o` lists, joined and parsed; `-b`/`-F` are folded in as backing_file/backing_fmt. */
  readonly options: ReadonlyMap<string, string>;
  /** `-u`: do not open the backing file to check it (and to take the size from it). */
  readonly unsafe: boolean;
  readonly filename: string;
  readonly size?: number;
}

export interface InfoCommand extends Common {
  readonly command: 'info';
  readonly output: OutputFormat;
  readonly backingChain: boolean;
  readonly filename: string;
}

export interface CheckCommand extends Common {
  readonly command: 'check';
  readonly output: OutputFormat;
  readonly repair?: 'leaks' | 'all';
  readonly filename: string;
}

export interface ConvertCommand extends Common {
  readonly command: 'convert';
  readonly outputFormat: string;
  readonly compress: boolean;
  readonly progress: boolean;
  /** `-n`: the target exists; do not create it. */
  readonly noCreate: boolean;
  /** `-S`: runs of zeroes at least this long are not written (0: write everything). */
  readonly sparseSize: number;
  readonly options: ReadonlyMap<string, string>;
  /** `-t`: host cache mode of the target (qemu-img's default: unsafe). */
  readonly cache: CacheMode;
  /** `-T`: host cache mode of the sources (default writeback). */
  readonly sourceCache: CacheMode;
  readonly sources: readonly string[];
  readonly target: string;
}

export interface CompareCommand extends Common {
  readonly command: 'compare';
  readonly format2?: string;
  readonly strict: boolean;
  readonly progress: boolean;
  readonly filename1: string;
  readonly filename2: string;
}

export interface MapCommand extends Common {
  readonly command: 'map';
  readonly output: OutputFormat;
  readonly startOffset: number;
  readonly maxLength?: number;
  readonly filename: string;
}

export type SnapshotAction = 'list' | 'create' | 'apply' | 'delete';

export interface SnapshotCommand extends Common {
  readonly command: 'snapshot';
  readonly action: SnapshotAction;
  /** The snapshot id or tag for create, apply and delete. */
  readonly name?: string;
  readonly filename: string;
}

export interface ResizeCommand extends Common {
  readonly command: 'resize';
  readonly shrink: boolean;
  readonly preallocation?: string;
  readonly size: RelativeSize;
  readonly filename: string;
}

export interface CommitCommand extends Common {
  readonly command: 'commit';
  readonly base?: string;
  /** `-d`: do not empty the image after committing. */
  readonly keep: boolean;
  readonly progress: boolean;
  readonly filename: string;
}

export interface RebaseCommand extends Common {
  readonly command: 'rebase';
  /** `-b`: the new backing file; '' removes it (the image becomes independent). */
  readonly backingFile: string;
  readonly backingFormat?: string;
  readonly unsafe: boolean;
  readonly progress: boolean;
  readonly filename: string;
}

export interface AmendCommand extends Common {
  readonly command: 'amend';
  readonly options: ReadonlyMap<string, string>;
  readonly force: boolean;
  readonly filename: string;
}

export interface BenchCommand extends Common {
  readonly command: 'bench';
  readonly count: number;
  readonly depth: number;
  readonly offset: number;
  readonly bufferSize: number;
  /** Distance between request offsets; 0: `bufferSize`. */
  readonly stepSize: number;
  readonly write: boolean;
  readonly pattern: number;
  readonly cache: CacheMode;
  /** `--flush-interval`: flush after this many write requests (0: never). */
  readonly flushInterval: number;
  readonly noDrain: boolean;
  readonly filename: string;
}

export interface HelpCommand {
  readonly command: 'help';
  /** Text to print on stdout (commander's help or vimg's summary). */
  readonly text: string;
}

export type ParsedCommand =
  | CreateCommand
  | InfoCommand
  | CheckCommand
  | ConvertCommand
  | CompareCommand
  | MapCommand
  | SnapshotCommand
  | ResizeCommand
  | CommitCommand
  | RebaseCommand
  | AmendCommand
  | BenchCommand
  | HelpCommand;

export const COMMANDS = ['amend', 'bench', 'check', 'commit', 'compare', 'convert', 'create', 'info', 'map', 'rebase', 'resize', 'snapshot'] as const;

const CACHE_MODES: readonly CacheMode[] = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'];

export const SUMMARY = `usage: vimg [standard options] command [command options]
vimg: a qemu-img-compatible disk image tool (raw, qcow2) in TypeScript

Command syntax (as qemu-img's):
  amend [-f fmt] [--force] -o options filename
  bench [-c count] [-d depth] [-f fmt] [--flush-interval=n] [--no-drain] [-o offset] [--pattern=n] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] filename
  check [-q] [--output=ofmt] [-f fmt] [-r [leaks | all]] filename
  commit [-q] [-f fmt] [-b base] [-d] [-p] filename
  compare [-f fmt] [-F fmt] [-p] [-q] [-s] filename1 filename2
  convert [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] filename [filename2 [...]] output_filename
  create [-q] [-f fmt] [-b backing_file -F backing_fmt] [-u] [-o options] filename [size]
  info [-f fmt] [--output=ofmt] [--backing-chain] filename
  map [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] filename
  rebase [-q] [-f fmt] [-p] [-u] -b backing_file [-F backing_fmt] filename
  resize [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size
  snapshot [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename

Sizes take the suffixes k, M, G, T, P, E (powers of 1024). Exit codes follow qemu-img's.
`;

/**
 * Parses a vimg command line (without `node` and the script name) into a typed command. Throws
 * VimgError USAGE (or INVALID_SIZE / INVALID_OPTION) for a bad command line.
 */
export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') return { command: 'help', text: SUMMARY };
  if (name === '-V' || name === '--version') return { command: 'help', text: 'vimg version 0.1.0 (qemu-img 7.2 compatible command line)\n' };
  switch (name) {
    case 'create':
      return parseCreate(rest);
    case 'info':
      return parseInfo(rest);
    case 'check':
      return parseCheck(rest);
    case 'convert':
      return parseConvert(rest);
    case 'compare':
      return parseCompare(rest);
    case 'map':
      return parseMap(rest);
    case 'snapshot':
      return parseSnapshot(rest);
    case 'resize':
      return parseResize(rest);
    case 'commit':
      return parseCommit(rest);
    case 'rebase':
      return parseRebase(rest);
    case 'amend':
      return parseAmend(rest);
    case 'bench':
      return parseBench(rest);
    default:
      throw new VimgError('USAGE', `Command not found: ${name}`);
  }
}

interface Parsed {
  readonly opts: Record<string, unknown>;
  readonly args: string[];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Runs a commander program for one subcommand and returns its options and operands. */
function run(name: string, argv: readonly string[], configure: (command: Command) => void, operands: { min: number; max: number }): Parsed | HelpCommand {
  let helpText = '';
  const command = new Command(`vimg ${name}`)
    .exitOverride()
    .allowExcessArguments(true)
    .configureOutput({
      writeOut: (text) => {
        helpText += text;
      },
      writeErr: () => undefined,
      outputError: () => undefined,
    })
    .helpOption('-h, --help', 'show this help');
  configure(command);
  command.option('--allow-backing <file>', 'allow this backing file outside the image directory (repeatable)', collect);
  try {
    command.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.help') return { command: 'help', text: helpText };
      throw new VimgError('USAGE', error.message.replace(/^error: /, ''), { command: name }, { cause: error });
    }
    throw error;
  }
  const args = command.args;
  if (args.length < operands.min) throw new VimgError('USAGE', `Expecting ${operands.min === 1 ? 'one image file name' : `${operands.min} operands`}; try 'vimg ${name} --help'`, { command: name });
  if (args.length > operands.max) throw new VimgError('USAGE', `Unexpected operand '${args[operands.max]!}'; try 'vimg ${name} --help'`, { command: name });
  return { opts: command.opts(), args };
}

function str(opts: Record<string, unknown>, key: string): string | undefined {
  const value = opts[key];
  return typeof value === 'string' ? value : undefined;
}

function allowed(opts: Record<string, unknown>): string[] {
  return (opts['allowBacking'] as string[] | undefined) ?? [];
}

function bool(opts: Record<string, unknown>, key: string): boolean {
  return opts[key] === true;
}

function outputFormat(opts: Record<string, unknown>): OutputFormat {
  const value = str(opts, 'output') ?? 'human';
  if (value !== 'human' && value !== 'json') throw new VimgError('USAGE', `--output must be used with human or json as argument.`, { option: 'output' });
  return value;
}

function cacheMode(value: string | undefined, fallback: CacheMode): CacheMode {
  if (value === undefined) return fallback;
  if (!(CACHE_MODES as readonly string[]).includes(value)) throw new VimgError('USAGE', `Invalid cache option: ${value} (expected ${CACHE_MODES.join(', ')})`, { option: 't' });
  return value as CacheMode;
}

function integer(name: string, text: string | undefined, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new VimgError('USAGE', `Invalid ${name} specified: '${text}'`, { option: name });
  const value = Number(text);
  if (value < min || value > max) throw new VimgError('USAGE', `Invalid ${name} specified: must be in [${min}, ${max}]`, { option: name });
  return value;
}

function isHelp(parsed: Parsed | HelpCommand): parsed is HelpCommand {
  return (parsed as HelpCommand).command === 'help';
}

function parseCreate(argv: readonly string[]): CreateCommand | HelpCommand {
  const parsed = run(
    'create',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format', 'raw')
        .option('-o <options>', 'format options (repeatable, comma-separated)', collect)
        .option('-b <backing_file>', 'backing file')
        .option('-F <backing_fmt>', 'backing file format')
        .option('-u', 'do not open the backing file')
        .option('-q', 'quiet'),
    { min: 1, max: 2 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const options = parseOptionList(joinOptionLists((opts['o'] as string[] | undefined) ?? []));
  const backing = str(opts, 'b');
  const backingFormat = str(opts, 'F');
  if (backing !== undefined) options.set('backing_file', backing);
  if (backingFormat !== undefined) options.set('backing_fmt', backingFormat);
  const sizeText = args[1];
  return {
    command: 'create',
    allowBacking: allowed(opts),
    format: str(opts, 'f') ?? 'raw',
    options,
    unsafe: bool(opts, 'u'),
    quiet: bool(opts, 'q'),
    filename: args[0]!,
    ...(sizeText !== undefined ? { size: parseSize(sizeText) } : {}),
  };
}

function parseInfo(argv: readonly string[]): InfoCommand | HelpCommand {
  const parsed = run(
    'info',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('--output <ofmt>', 'human or json')
        .option('--backing-chain', 'also describe the backing files')
        .option('-U, --force-share', 'accepted for compatibility (vimg takes no locks)'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  return { command: 'info',
    allowBacking: allowed(opts), ...fmt(opts), quiet: false, output: outputFormat(opts), backingChain: bool(opts, 'backingChain'), filename: args[0]! };
}

function fmt(opts: Record<string, unknown>): { format?: string } {
  const format = str(opts, 'f');
  return format === undefined ? {} : { format };
}

function parseCheck(argv: readonly string[]): CheckCommand | HelpCommand {
  const parsed = run(
    'check',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('--output <ofmt>', 'human or json')
        .option('-r <mode>', 'repair: leaks or all')
        .option('-q', 'quiet')
        .option('-T <cache>', 'source cache mode (accepted, ignored)')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const repair = str(opts, 'r');
  if (repair !== undefined && repair !== 'leaks' && repair !== 'all') throw new VimgError('USAGE', `Invalid option for -r: ${repair} (expected leaks or all)`, { option: 'r' });
  return {
    command: 'check',
    allowBacking: allowed(opts),
    ...fmt(opts),
    quiet: bool(opts, 'q'),
    output: outputFormat(opts),
    ...(repair !== undefined ? { repair } : {}),
    filename: args[0]!,
  };
}

function parseConvert(argv: readonly string[]): ConvertCommand | HelpCommand {
  const parsed = run(
    'convert',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'source format')
        .option('-O <output_fmt>', 'output format', 'raw')
        .option('-o <options>', 'output format options (repeatable)', collect)
        .option('-B <backing_file>', 'backing file of the output')
        .option('-F <backing_fmt>', 'format of the output backing file')
        .option('-c', 'compress the output (qcow2)')
        .option('-p', 'show progress')
        .option('-q', 'quiet')
        .option('-n', 'do not create the target')
        .option('-S <sparse_size>', 'consecutive zero bytes to skip (default 4k)')
        .option('-t <cache>', 'target cache mode: writeback, none, writethrough, directsync, unsafe (default unsafe)')
        .option('-T <cache>', 'source cache mode (default writeback)')
        .option('-W', 'allow out-of-order writes (accepted, ignored)')
        .option('-m <num>', 'parallel requests (accepted, ignored)')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 2, max: Number.POSITIVE_INFINITY },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const options = parseOptionList(joinOptionLists((opts['o'] as string[] | undefined) ?? []));
  const backing = str(opts, 'B');
  const backingFormat = str(opts, 'F');
  if (backing !== undefined) options.set('backing_file', backing);
  if (backingFormat !== undefined) options.set('backing_fmt', backingFormat);
  const sparse = str(opts, 'S');
  return {
    command: 'convert',
    allowBacking: allowed(opts),
    ...fmt(opts),
    outputFormat: str(opts, 'O') ?? 'raw',
    options,
    compress: bool(opts, 'c'),
    progress: bool(opts, 'p') && !bool(opts, 'q'),
    quiet: bool(opts, 'q'),
    noCreate: bool(opts, 'n'),
    // qemu-img: -S takes a size in bytes (sectors without a suffix is long gone); default 4 KiB.
    sparseSize: sparse === undefined ? 4096 : parseSize(sparse),
    cache: cacheMode(str(opts, 't'), 'unsafe'),
    sourceCache: cacheMode(str(opts, 'T'), 'writeback'),
    sources: args.slice(0, -1),
    target: args[args.length - 1]!,
  };
}

function parseCompare(argv: readonly string[]): CompareCommand | HelpCommand {
  const parsed = run(
    'compare',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'format of the first image')
        .option('-F <fmt>', 'format of the second image')
        .option('-s', 'strict: fail on a size mismatch or allocation differences')
        .option('-p', 'show progress')
        .option('-q', 'quiet')
        .option('-T <cache>', 'source cache mode (accepted, ignored)')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 2, max: 2 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const format2 = str(opts, 'F');
  return {
    command: 'compare',
    allowBacking: allowed(opts),
    ...fmt(opts),
    ...(format2 !== undefined ? { format2 } : {}),
    strict: bool(opts, 's'),
    progress: bool(opts, 'p') && !bool(opts, 'q'),
    quiet: bool(opts, 'q'),
    filename1: args[0]!,
    filename2: args[1]!,
  };
}

function parseMap(argv: readonly string[]): MapCommand | HelpCommand {
  const parsed = run(
    'map',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('--output <ofmt>', 'human or json')
        .option('-s, --start-offset <offset>', 'first byte to map')
        .option('-l, --max-length <len>', 'bytes to map')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const start = str(opts, 'startOffset');
  const max = str(opts, 'maxLength');
  return {
    command: 'map',
    allowBacking: allowed(opts),
    ...fmt(opts),
    quiet: false,
    output: outputFormat(opts),
    startOffset: start === undefined ? 0 : parseSize(start),
    ...(max !== undefined ? { maxLength: parseSize(max) } : {}),
    filename: args[0]!,
  };
}

function parseSnapshot(argv: readonly string[]): SnapshotCommand | HelpCommand {
  const parsed = run(
    'snapshot',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('-l', 'list snapshots')
        .option('-c <snapshot>', 'create a snapshot')
        .option('-a <snapshot>', 'apply (revert to) a snapshot')
        .option('-d <snapshot>', 'delete a snapshot')
        .option('-q', 'quiet')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const chosen: [SnapshotAction, string | undefined][] = [];
  if (bool(opts, 'l')) chosen.push(['list', undefined]);
  for (const [flag, action] of [['c', 'create'], ['a', 'apply'], ['d', 'delete']] as const) {
    const value = str(opts, flag);
    if (value !== undefined) chosen.push([action, value]);
  }
  if (chosen.length > 1) throw new VimgError('USAGE', 'Cannot mix -l, -c, -a and -d', { command: 'snapshot' });
  const [action, name] = chosen[0] ?? ['list', undefined];
  return { command: 'snapshot',
    allowBacking: allowed(opts), ...fmt(opts), quiet: bool(opts, 'q'), action, ...(name !== undefined ? { name } : {}), filename: args[0]! };
}

function parseResize(argv: readonly string[]): ResizeCommand | HelpCommand {
  // qemu-img takes the size out of argv before getopt so that "-1G" is not an option.
  const last = argv[argv.length - 1];
  let sizeText: string | undefined;
  let rest = argv;
  if (last !== undefined && /^[+-]?\d/.test(last)) {
    sizeText = last;
    rest = argv.slice(0, -1);
  }
  const parsed = run(
    'resize',
    rest,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('--shrink', 'allow shrinking')
        .option('--preallocation <mode>', 'preallocation of the new space (off)')
        .option('-q', 'quiet'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  if (sizeText === undefined) throw new VimgError('USAGE', "Expecting image file name and size; try 'vimg resize --help'", { command: 'resize' });
  const { opts, args } = parsed;
  const preallocation = str(opts, 'preallocation');
  return {
    command: 'resize',
    allowBacking: allowed(opts),
    ...fmt(opts),
    quiet: bool(opts, 'q'),
    shrink: bool(opts, 'shrink'),
    ...(preallocation !== undefined ? { preallocation } : {}),
    size: parseRelativeSize(sizeText),
    filename: args[0]!,
  };
}

function parseCommit(argv: readonly string[]): CommitCommand | HelpCommand {
  const parsed = run(
    'commit',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('-b <base>', 'commit into this backing image (default: the direct backing file)')
        .option('-d', 'do not empty the image after committing')
        .option('-p', 'show progress')
        .option('-q', 'quiet')
        .option('-t <cache>', 'cache mode (accepted, ignored)'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const base = str(opts, 'b');
  return { command: 'commit',
    allowBacking: allowed(opts), ...fmt(opts), quiet: bool(opts, 'q'), ...(base !== undefined ? { base } : {}), keep: bool(opts, 'd'), progress: bool(opts, 'p') && !bool(opts, 'q'), filename: args[0]! };
}

function parseRebase(argv: readonly string[]): RebaseCommand | HelpCommand {
  const parsed = run(
    'rebase',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('-b <backing_file>', 'new backing file ("" for none)')
        .option('-F <backing_fmt>', 'new backing file format')
        .option('-u', 'unsafe: only change the backing file name')
        .option('-p', 'show progress')
        .option('-q', 'quiet')
        .option('-t <cache>', 'cache mode (accepted, ignored)')
        .option('-T <cache>', 'source cache mode (accepted, ignored)')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const backingFile = str(opts, 'b');
  if (backingFile === undefined) throw new VimgError('USAGE', 'Must specify backing file (-b) or use unsafe mode (-u) with -b ""', { command: 'rebase' });
  const backingFormat = str(opts, 'F');
  return {
    command: 'rebase',
    allowBacking: allowed(opts),
    ...fmt(opts),
    quiet: bool(opts, 'q'),
    backingFile,
    ...(backingFormat !== undefined ? { backingFormat } : {}),
    unsafe: bool(opts, 'u'),
    progress: bool(opts, 'p') && !bool(opts, 'q'),
    filename: args[0]!,
  };
}

function parseAmend(argv: readonly string[]): AmendCommand | HelpCommand {
  const parsed = run(
    'amend',
    argv,
    (c) =>
      c
        .option('-f <fmt>', 'image format')
        .option('-o <options>', 'options to change (repeatable)', collect)
        .option('--force', 'allow unsafe changes')
        .option('-p', 'show progress (accepted)')
        .option('-q', 'quiet')
        .option('-t <cache>', 'cache mode (accepted, ignored)'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const lists = (opts['o'] as string[] | undefined) ?? [];
  if (lists.length === 0) throw new VimgError('USAGE', 'Must specify options (-o)', { command: 'amend' });
  return { command: 'amend',
    allowBacking: allowed(opts), ...fmt(opts), quiet: bool(opts, 'q'), options: parseOptionList(joinOptionLists(lists)), force: bool(opts, 'force'), filename: args[0]! };
}

function parseBench(argv: readonly string[]): BenchCommand | HelpCommand {
  const parsed = run(
    'bench',
    argv,
    (c) =>
      c
        .option('-c <count>', 'number of requests (75000)')
        .option('-d <depth>', 'requests in flight (64)')
        .option('-f <fmt>', 'image format')
        .option('-o <offset>', 'first request offset')
        .option('-s <buffer_size>', 'request size (4k)')
        .option('-S <step_size>', 'offset step between requests (default: buffer size)')
        .option('-t <cache>', 'cache mode: writeback, none, writethrough, directsync, unsafe (default writeback)')
        .option('-w', 'write instead of read')
        .option('-q', 'quiet')
        .option('-n', 'native AIO (accepted, ignored)')
        .option('-i <aio>', 'AIO mode (accepted, ignored)')
        .option('--pattern <pattern>', 'byte written by -w (0)')
        .option('--flush-interval <n>', 'flush after every n writes')
        .option('--no-drain', 'do not wait for requests before a flush')
        .option('-U, --force-share', 'accepted for compatibility'),
    { min: 1, max: 1 },
  );
  if (isHelp(parsed)) return parsed;
  const { opts, args } = parsed;
  const bufferSize = parseSize(str(opts, 's') ?? '4096');
  if (bufferSize === 0 || bufferSize > 2 ** 30) throw new VimgError('USAGE', 'Invalid buffer size specified (1 byte to 1 GiB)', { option: 's' });
  const step = str(opts, 'S');
  return {
    command: 'bench',
    allowBacking: allowed(opts),
    ...fmt(opts),
    quiet: bool(opts, 'q'),
    count: integer('request count', str(opts, 'c'), 75000, 1),
    depth: integer('queue depth', str(opts, 'd'), 64, 1, 4096),
    offset: parseSize(str(opts, 'o') ?? '0'),
    bufferSize,
    stepSize: step === undefined ? 0 : parseSize(step),
    write: bool(opts, 'w'),
    pattern: integer('pattern', str(opts, 'pattern'), 0, 0, 255),
    cache: cacheMode(str(opts, 't'), 'writeback'),
    flushInterval: integer('flush interval', str(opts, 'flushInterval'), 0),
    noDrain: opts['drain'] === false,
    filename: args[0]!,
  };
}

