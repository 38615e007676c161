import type { AmendCommand } from '../cli/parse.js';
import { parseOnOff } from '../cli/option-list.js';
import { VimgError } from '../errors.js';
import type { CommandContext } from './context.js';

/** Options `vimg amend` changes in place (the cheap ones: header fields, no data rewrite). */
export const AMENDABLE = ['compat', 'lazy_refcounts'] as const;

/** `vimg amend -o compat=...,lazy_refcounts=... FILE` (qcow2). */
export async function runAmend(command: AmendCommand, context: CommandContext): Promise<number> {
  const amend = context.host.amend?.bind(context.host);
  for (const [key, value] of command.options) {
    if (!(AMENDABLE as readonly string[]).includes(key)) throw new VimgError('UNSUPPORTED', `Changing '${key}' is not supported by vimg amend (only ${AMENDABLE.join(', ')})`, { option: key });
    if (key === 'compat' && !['0.10', '1.1', 'v2', 'v3'].includes(value)) throw new VimgError('INVALID_OPTION', `Invalid compatibility level: '${value}'`, { option: key });
    if (key === 'lazy_refcounts') parseOnOff(key, value);
  }
  if (amend === undefined) throw new VimgError('UNSUPPORTED', 'amend needs a qcow2 header rewrite that @virtio-ts/block does not have yet');
  const chain = await context.host.open(command.filename, { ...(command.format !== undefined ? { format: command.format } : {}), writable: true, backing: false });
  try {
    if (chain.layers[0]!.format !== 'qcow2') throw new VimgError('UNSUPPORTED', `Format driver '${chain.layers[0]!.format}' does not support option amendment`);
    await amend(chain, command.options);
    return 0;
  } finally {
    await chain.close();
  }
}
