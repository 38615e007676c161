import type { ResizeCommand } from '../cli/parse.js';
import { VimgError } from '../errors.js';
import type { CommandContext } from './context.js';

/** `vimg resize [--shrink] FILE [+|-]SIZE`, as qemu-img resize. */
export async function runResize(command: ResizeCommand, context: CommandContext): Promise<number> {
  if (command.preallocation !== undefined && command.preallocation !== 'off') {
    throw new VimgError('UNSUPPORTED', `Unsupported preallocation mode '${command.preallocation}' for resize (only off)`, { option: 'preallocation' });
  }
  const chain = await context.host.open(command.filename, { ...(command.format !== undefined ? { format: command.format } : {}), writable: true, backing: false });
  try {
    const driver = chain.top;
    const current = driver.length;
    const { relative, bytes } = command.size;
    const target = relative === 0 ? bytes : current + relative * bytes;
    if (target < 0) throw new VimgError('INVALID_SIZE', 'New image size must be positive.');
    if (driver.resize === undefined) throw new VimgError('UNSUPPORTED', `Image format '${chain.layers[0]!.format}' does not support resizing`);
    if (target < current && !command.shrink) {
      context.io.stderr(
        'vimg: warning: Shrinking an image will delete all data beyond the shrunken image\'s end. Before performing such an operation, make sure there is no important data there.\n',
      );
      if (chain.layers[0]!.format !== 'raw') throw new VimgError('USAGE', 'Use the --shrink option to perform a shrink operation.');
      context.io.stderr('vimg: warning: Using the --shrink option will suppress this message. Note that future versions of qemu-img may refuse to shrink images without this option.\n');
    }
    await driver.resize(target);
    await driver.flush();
    if (!command.quiet) context.io.stdout('Image resized.\n');
    return 0;
  } finally {
    await chain.close();
  }
}
