import { dirname, isAbsolute, resolve } from 'node:path';
import type { CreateCommand } from '../cli/parse.js';
import { parseSize } from '../cli/size.js';
import { VimgError } from '../errors.js';
import { checkFormat, formattingLine, parseQcow2Options, parseRawOptions } from '../image/create-options.js';
import type { CreateRequest, ImageHost } from '../image/image-host.js';
import type { CommandContext } from './context.js';

/** `vimg create`: as qemu-img create, with the same `Formatting ...` line. */
export async function runCreate(command: CreateCommand, context: CommandContext): Promise<number> {
  const format = checkFormat(command.format);
  const request = await buildCreateRequest(context.host, command.filename, format, command.size, command.options, !command.unsafe);
  if (!command.quiet) context.io.stdout(formattingLine(command.filename, format, request.size, command.options));
  await context.host.create(request);
  return 0;
}

/**
 * Validates options and settles the size: when absent, it is taken from the backing file (which
 * must then be opened); `checkBacking` opens the backing file to prove it exists and is valid.
 */
export async function buildCreateRequest(
  host: ImageHost,
  filename: string,
  format: 'raw' | 'qcow2',
  size: number | undefined,
  options: ReadonlyMap<string, string>,
  checkBacking: boolean,
): Promise<CreateRequest> {
  if (format === 'raw') {
    const raw = parseRawOptions(options);
    const rawSize = size ?? sizeOption(options);
    if (rawSize === undefined) throw new VimgError('USAGE', 'Image creation needs a size parameter');
    return { path: filename, format, size: rawSize, options: raw };
  }
  const qcow2 = parseQcow2Options(options);
  let qcow2Size = size ?? sizeOption(options);
  if (qcow2.backingFile !== undefined && (checkBacking || qcow2Size === undefined)) {
    // The user named this backing file on the command line: opening it is allowed (README rule).
    const backingPath = isAbsolute(qcow2.backingFile) ? qcow2.backingFile : resolve(dirname(filename), qcow2.backingFile);
    const backing = await host.open(backingPath, { format: qcow2.backingFormat!, writable: false, backing: false });
    try {
      qcow2Size ??= backing.top.length;
    } finally {
      await backing.close();
    }
  }
  if (qcow2Size === undefined) throw new VimgError('USAGE', 'Image creation needs a size parameter');
  return { path: filename, format, size: qcow2Size, options: qcow2 };
}

function sizeOption(options: ReadonlyMap<string, string>): number | undefined {
  const text = options.get('size');
  return text === undefined ? undefined : parseSize(text);
}
