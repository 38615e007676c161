import { BlockError } from '@virtio-ts/block';
import { parseCommandLine, type ParsedCommand } from './cli/parse.js';
import { runAmend } from './commands/amend.js';
import { runBench } from './commands/bench.js';
import { runCheck } from './commands/check.js';
import { runCommit } from './commands/commit.js';
import { COMPARE_ERROR, runCompare } from './commands/compare.js';
import type { CliIo, CommandContext } from './commands/context.js';
import { runConvert } from './commands/convert.js';
import { runCreate } from './commands/create.js';
import { runInfo } from './commands/info.js';
import { runMap } from './commands/map.js';
import { runRebase } from './commands/rebase.js';
import { runResize } from './commands/resize.js';
import { runSnapshot } from './commands/snapshot.js';
import { VimgError } from './errors.js';
import type { ImageHost } from './image/image-host.js';

/**
 * Runs one vimg command line (without `node` and the script name) and returns the exit status.
 * Never throws: errors print `vimg: <message>` on stderr (the message carries the error code),
 * never a stack.
 *
 * @example
 * const out: string[] = [];
 * const status = await runVimg(['info', '--output=json', 'disk.qcow2'], { stdout: (t) => out.push(t), stderr: () => {} }, new NodeImageHost());
 */
export async function runVimg(argv: readonly string[], io: CliIo, host: ImageHost | (() => Promise<ImageHost>)): Promise<number> {
  let command: ParsedCommand | undefined;
  try {
    command = parseCommandLine(argv);
    if (command.command === 'help') {
      io.stdout(command.text);
      return 0;
    }
    const context: CommandContext = { io, host: typeof host === 'function' ? await host() : host };
    return await dispatch(command, context);
  } catch (error) {
    io.stderr(`vimg: ${describeError(error)}\n`);
    return command?.command === 'compare' ? COMPARE_ERROR : 1;
  }
}

function dispatch(command: Exclude<ParsedCommand, { command: 'help' }>, context: CommandContext): Promise<number> {
  switch (command.command) {
    case 'create':
      return runCreate(command, context);
    case 'info':
      return runInfo(command, context);
    case 'check':
      return runCheck(command, context);
    case 'convert':
      return runConvert(command, context);
    case 'compare':
      return runCompare(command, context);
    case 'map':
      return runMap(command, context);
    case 'snapshot':
      return runSnapshot(command, context);
    case 'resize':
      return runResize(command, context);
    case 'commit':
      return runCommit(command, context);
    case 'rebase':
      return runRebase(command, context);
    case 'amend':
      return runAmend(command, context);
    case 'bench':
      return runBench(command, context);
  }
}

/** One line for the user: our errors' messages (with their codes), and a code for anything else. */
export function describeError(error: unknown): string {
  if (VimgError.isInstance(error) || BlockError.isInstance(error)) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `${error.message}${code !== undefined && !error.message.includes(code) ? ` [${code}]` : ''} [INTERNAL]`;
  }
  return `${String(error)} [INTERNAL]`;
}
