import type { CommitCommand } from '../cli/parse.js';
import { VimgError } from '../errors.js';
import { ProgressPrinter } from '../format/progress.js';
import { realOrResolved } from '../image/backing-policy.js';
import { CHUNK_SIZE, statusOf } from './copy.js';
import type { CommandContext } from './context.js';

/**
 * `vimg commit`: writes the data the image (and the layers above the base) holds into the base
 * (by default its direct backing file), then empties the image unless `-d`.
 */
export async function runCommit(command: CommitCommand, context: CommandContext): Promise<number> {
  const makeEmpty = context.host.makeEmpty?.bind(context.host);
  // qemu-img: "-b implies -d" (the layers between the image and the base are invalid afterwards,
  // so emptying the image would not help).
  const keep = command.keep || command.base !== undefined;
  if (!keep && makeEmpty === undefined) {
    throw new VimgError('UNSUPPORTED', 'Emptying the image after commit needs a full-discard API that @virtio-ts/block does not have yet; use commit -d (the image then keeps its data, which equals the base)');
  }
  const chain = await context.host.open(command.filename, {
    ...(command.format !== undefined ? { format: command.format } : {}),
    writable: true,
    writableBacking: true,
    allowBacking: command.allowBacking,
  });
  try {
    if (chain.layers.length < 2) throw new VimgError('USAGE', `Image '${command.filename}' does not have a backing file`);
    let baseIndex = 1;
    if (command.base !== undefined) {
      const basePath = realOrResolved(command.base);
      baseIndex = chain.layers.findIndex((layer, index) => index > 0 && layer.path === basePath);
      if (baseIndex < 0) throw new VimgError('USAGE', `'${command.base}' is not in the backing chain of '${command.filename}'`);
    }
    const top = chain.top;
    const base = chain.layers[baseIndex]!.driver;
    const progress = command.progress ? new ProgressPrinter(context.io.stdout) : undefined;
    progress?.start();
    const length = Math.min(top.length, base.length);
    for (let offset = 0; offset < length; ) {
      const status = await statusOf(top, offset, Math.min(CHUNK_SIZE, length - offset));
      // Data (or zeroes) that some layer above the base holds must be written into the base.
      if (status.depth < baseIndex && (status.data || status.zero) && isAllocatedAbove(status, baseIndex)) {
        const data = new Uint8Array(status.length);
        await top.read(offset, data);
        await base.write(offset, data);
      }
      offset += status.length;
      progress?.update(offset, length);
    }
    await base.flush();
    if (!keep) await makeEmpty!(chain);
    progress?.end();
    if (!command.quiet) context.io.stdout('Image committed.\n');
    return 0;
  } finally {
    await chain.close();
  }
}

function isAllocatedAbove(status: { depth: number; data: boolean; zero: boolean; allocated?: boolean }, baseIndex: number): boolean {
  if (status.allocated !== undefined) return status.allocated && status.depth < baseIndex;
  return status.data || status.depth < baseIndex;
}
