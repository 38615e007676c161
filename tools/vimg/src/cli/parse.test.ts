import { describe, expect, it } from 'vitest';
import { VimgError } from '../errors.js';
import { parseCommandLine, type ParsedCommand } from './parse.js';

function parse(line: string[]): ParsedCommand {
  return parseCommandLine(line);
}

function usageError(line: string[]): VimgError {
  try {
    parseCommandLine(line);
  } catch (error) {
    if (VimgError.isInstance(error)) return error;
    throw error;
  }
  throw new Error(`parsed: ${line.join(' ')}`);
}

describe('vimg command line (qemu-img cases)', () => {
  it('convert -f qcow2 -O raw src dst', () => {
    const parsed = parse(['convert', '-f', 'qcow2', '-O', 'raw', 'a.qcow2', 'b.raw']);
    expect(parsed).toMatchObject({ command: 'convert', format: 'qcow2', outputFormat: 'raw', sources: ['a.qcow2'], target: 'b.raw', compress: false, sparseSize: 4096 });
  });

  it('bundled short options: -fqcow2 -Oraw', () => {
    expect(parse(['convert', '-fqcow2', '-Oraw', 'a', 'b'])).toMatchObject({ format: 'qcow2', outputFormat: 'raw' });
  });

  it('repeated -o and comma lists are joined, the last duplicate wins', () => {
    const parsed = parse(['create', '-f', 'qcow2', '-o', 'cluster_size=4k,compat=0.10', '-o', 'lazy_refcounts=on', '-o', 'compat=1.1', 'x.qcow2', '1M']);
    if (parsed.command !== 'create') throw new Error(parsed.command);
    expect(Object.fromEntries(parsed.options)).toEqual({ cluster_size: '4k', compat: '1.1', lazy_refcounts: 'on' });
    expect(parsed.size).toBe(1024 * 1024);
  });

  it('-b and -F become backing_file and backing_fmt', () => {
    const parsed = parse(['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2']);
    if (parsed.command !== 'create') throw new Error(parsed.command);
    expect(parsed.options.get('backing_file')).toBe('base.qcow2');
    expect(parsed.options.get('backing_fmt')).toBe('qcow2');
    expect(parsed.size).toBeUndefined();
  });

  it('--output=json and --output json', () => {
    expect(parse(['info', '--output=json', 'x'])).toMatchObject({ command: 'info', output: 'json' });
    expect(parse(['check', '--output', 'json', 'x'])).toMatchObject({ command: 'check', output: 'json' });
    expect(usageError(['info', '--output=xml', 'x']).code).toBe('USAGE');
  });

  it('info --backing-chain -f', () => {
    expect(parse(['info', '--backing-chain', '-f', 'qcow2', 'x'])).toMatchObject({ backingChain: true, format: 'qcow2' });
  });

  it('check -r leaks / -r all; anything else is a usage error', () => {
    expect(parse(['check', '-r', 'leaks', 'x'])).toMatchObject({ repair: 'leaks' });
    expect(parse(['check', '-rall', 'x'])).toMatchObject({ repair: 'all' });
    expect(usageError(['check', '-r', 'some', 'x']).code).toBe('USAGE');
  });

  it('sizes with suffixes k/M/G/T on create', () => {
    for (const [text, bytes] of [['512', 512], ['64k', 65536], ['1M', 2 ** 20], ['2G', 2 ** 31], ['1T', 2 ** 40], ['1.5G', 1.5 * 2 ** 30]] as const) {
      expect(parse(['create', 'x', text])).toMatchObject({ size: bytes });
    }
    expect(usageError(['create', 'x', '12Q']).code).toBe('INVALID_SIZE');
  });

  it('resize takes -1G out of argv before parsing, as qemu-img does', () => {
    expect(parse(['resize', 'x.qcow2', '-1G'])).toMatchObject({ command: 'resize', filename: 'x.qcow2', size: { relative: -1, bytes: 2 ** 30 } });
    expect(parse(['resize', '--shrink', '-f', 'raw', 'x', '+64k'])).toMatchObject({ shrink: true, format: 'raw', size: { relative: 1, bytes: 65536 } });
    expect(parse(['resize', 'x', '3M'])).toMatchObject({ size: { relative: 0, bytes: 3 * 2 ** 20 } });
    expect(usageError(['resize', 'x']).code).toBe('USAGE');
  });

  it('snapshot -c/-l/-a/-d and no mixing', () => {
    expect(parse(['snapshot', '-c', 's1', 'x'])).toMatchObject({ action: 'create', name: 's1' });
    expect(parse(['snapshot', '-l', 'x'])).toMatchObject({ action: 'list' });
    expect(parse(['snapshot', '-a', 's1', 'x'])).toMatchObject({ action: 'apply', name: 's1' });
    expect(parse(['snapshot', '-d', '1', 'x'])).toMatchObject({ action: 'delete', name: '1' });
    expect(usageError(['snapshot', '-c', 'a', '-d', 'b', 'x']).code).toBe('USAGE');
  });

  it('convert -c -p -S -B -o with several sources', () => {
    const parsed = parse(['convert', '-c', '-p', '-S', '64k', '-O', 'qcow2', '-B', 'b.qcow2', '-o', 'cluster_size=4k', 'a', 'b', 'out']);
    expect(parsed).toMatchObject({ compress: true, progress: true, sparseSize: 65536, sources: ['a', 'b'], target: 'out' });
    if (parsed.command !== 'convert') throw new Error(parsed.command);
    expect(Object.fromEntries(parsed.options)).toEqual({ cluster_size: '4k', backing_file: 'b.qcow2' });
  });

  it('compare -s -f -F; rebase -u -b ""; commit -d -b', () => {
    expect(parse(['compare', '-s', '-f', 'raw', '-F', 'qcow2', 'a', 'b'])).toMatchObject({ strict: true, format: 'raw', format2: 'qcow2' });
    expect(parse(['rebase', '-u', '-b', '', 'x'])).toMatchObject({ unsafe: true, backingFile: '' });
    expect(usageError(['rebase', 'x']).code).toBe('USAGE');
    expect(parse(['commit', '-d', '-b', 'base', 'x'])).toMatchObject({ keep: true, base: 'base' });
  });

  it('bench -c -d -s -w -o -S --pattern -t', () => {
    const parsed = parse(['bench', '-c', '1000', '-d', '32', '-s', '64k', '-w', '-o', '1M', '-S', '128k', '--pattern=170', '-t', 'none', '-f', 'qcow2', 'x']);
    expect(parsed).toMatchObject({ count: 1000, depth: 32, bufferSize: 65536, write: true, offset: 2 ** 20, stepSize: 131072, pattern: 170, cache: 'none', format: 'qcow2' });
    expect(parse(['bench', 'x'])).toMatchObject({ count: 75000, depth: 64, bufferSize: 4096, write: false, cache: 'writeback' });
    expect(usageError(['bench', '-t', 'bogus', 'x']).code).toBe('USAGE');
    expect(usageError(['bench', '--pattern=300', 'x']).code).toBe('USAGE');
  });

  it('amend needs -o', () => {
    expect(parse(['amend', '-o', 'compat=0.10', 'x'])).toMatchObject({ command: 'amend' });
    expect(usageError(['amend', 'x']).code).toBe('USAGE');
  });

  it('unknown options, commands and missing operands are USAGE errors without a stack', () => {
    expect(usageError(['info', '--bogus', 'x']).code).toBe('USAGE');
    expect(usageError(['frobnicate']).message).toContain('Command not found: frobnicate');
    expect(usageError(['info']).code).toBe('USAGE');
    expect(usageError(['info', 'a', 'b']).code).toBe('USAGE');
  });

  it('help', () => {
    expect(parse([])).toMatchObject({ command: 'help' });
    const help = parse(['convert', '--help']);
    expect(help.command).toBe('help');
    if (help.command === 'help') expect(help.text).toContain('-O <output_fmt>');
  });
});
