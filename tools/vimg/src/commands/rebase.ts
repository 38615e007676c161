import { dirname, isAbsolute, resolve } from 'node:path';
import type { RebaseCommand } from '../cli/parse.js';
import { VimgError } from '../errors.js';
import { ProgressPrinter } from '../format/progress.js';
import type { ImageChain } from '../image/image-host.js';
import { CHUNK_SIZE, firstDifference, statusOf } from './copy.js';
import type { CommandContext } from './context.js';

/**
 * `vimg rebase -b NEW [-F fmt] [-u] FILE`. Safe mode copies into FILE every range it does not hold
 * itself where the old and the new backing files differ, so the guest-visible content is
 * unchanged; `-u` only rewrites the backing file name. `-b ""` makes FILE independent.
 */
export async function runRebase(command: RebaseCommand, context: CommandContext): Promise<number> {
  const format = command.format !== undefined ? { format: command.format } : {};
  const newName = command.backingFile === '' ? undefined : command.backingFile;
  const setBacking = context.host.setBacking?.bind(context.host);
  if (setBacking === undefined) throw new VimgError('UNSUPPORTED', 'Changing the backing file needs a qcow2 header rewrite that @virtio-ts/block does not have yet');
  if (command.unsafe) {
    const chain = await context.host.open(command.filename, { ...format, writable: true, backing: false });
    try {
      await setBacking(chain, newName, newName === undefined ? undefined : command.backingFormat ?? (await probeFormat(context, command.filename, newName, command.allowBacking)));
    } finally {
      await chain.close();
    }
    return 0;
  }
  const chain = await context.host.open(command.filename, { ...format, writable: true, allowBacking: command.allowBacking });
  let fresh: ImageChain | undefined;
  try {
    let newFormat: string | undefined;
    if (newName !== undefined) {
      // The user named the new backing file: it may be opened (and probed when -F is absent).
      fresh = await context.host.open(backingPath(command.filename, newName), { ...(command.backingFormat !== undefined ? { format: command.backingFormat } : {}), writable: false, allowBacking: command.allowBacking });
      newFormat = fresh.layers[0]!.format;
    }
    const top = chain.top;
    const progress = command.progress ? new ProgressPrinter(context.io.stdout) : undefined;
    progress?.start();
    const oldData = new Uint8Array(CHUNK_SIZE);
    const newData = new Uint8Array(CHUNK_SIZE);
    for (let offset = 0; offset < top.length; ) {
      const status = await statusOf(top, offset, Math.min(CHUNK_SIZE, top.length - offset));
      const ownsRange = status.depth === 0 && ((status as { allocated?: boolean }).allocated ?? (status.data || chain.layers.length === 1));
      if (!ownsRange) {
        const oldView = oldData.subarray(0, status.length);
        const newView = newData.subarray(0, status.length);
        await top.read(offset, oldView);
        newView.fill(0);
        if (fresh !== undefined && offset < fresh.top.length) await fresh.top.read(offset, newView.subarray(0, Math.min(status.length, fresh.top.length - offset)));
        if (firstDifference(oldView, newView) >= 0) await top.write(offset, oldView);
      }
      offset += status.length;
      progress?.update(offset, top.length);
    }
    await top.flush();
    await setBacking(chain, newName, newFormat);
    progress?.end();
    return 0;
  } finally {
    await fresh?.close();
    await chain.close();
  }
}

function backingPath(imageName: string, backingName: string): string {
  return isAbsolute(backingName) ? backingName : resolve(dirname(imageName), backingName);
}

async function probeFormat(context: CommandContext, imageName: string, backingName: string, allowBacking: readonly string[]): Promise<string> {
  const probe = await context.host.open(backingPath(imageName, backingName), { writable: false, backing: false, allowBacking });
  try {
    return probe.layers[0]!.format;
  } finally {
    await probe.close();
  }
}
