import type { SnapshotCommand } from '../cli/parse.js';
import { formatSnapshotTable } from '../format/image-info.js';
import type { CommandContext } from './context.js';

/** `vimg snapshot -l | -c | -a | -d`: qcow2 internal snapshots. */
export async function runSnapshot(command: SnapshotCommand, context: CommandContext): Promise<number> {
  const writable = command.action !== 'list';
  const chain = await context.host.open(command.filename, { ...(command.format !== undefined ? { format: command.format } : {}), writable, backing: false });
  try {
    switch (command.action) {
      case 'list': {
        const snapshots = await context.host.listSnapshots(chain);
        if (snapshots.length > 0 && !command.quiet) context.io.stdout(`Snapshot list:\n${formatSnapshotTable(snapshots)}`);
        break;
      }
      case 'create':
        await context.host.createSnapshot(chain, command.name!);
        break;
      case 'apply':
        await context.host.applySnapshot(chain, command.name!);
        break;
      case 'delete':
        await context.host.deleteSnapshot(chain, command.name!);
        break;
    }
    return 0;
  } finally {
    await chain.close();
  }
}
