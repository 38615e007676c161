import type { MapCommand } from '../cli/parse.js';
import { formatMapHuman, formatMapJson, type MapEntry } from '../format/map-entry.js';
import type { ImageChain } from '../image/image-host.js';
import { statusOf } from './copy.js';
import type { CommandContext } from './context.js';

/** Bytes asked for per blockStatus call (qemu-img map asks for at most 1 GiB at a time). */
const MAP_STEP = 2 ** 30;

/** `vimg map`: the allocation of every guest range, as qemu-img map. */
export async function runMap(command: MapCommand, context: CommandContext): Promise<number> {
  const chain = await context.host.open(command.filename, { ...(command.format !== undefined ? { format: command.format } : {}), writable: false });
  try {
    const entries = await mapEntries(chain, command.startOffset, command.maxLength);
    context.io.stdout(command.output === 'json' ? formatMapJson(entries) : formatMapHuman(entries));
    return 0;
  } finally {
    await chain.close();
  }
}

/** The unmerged runs of a chain between `start` and `start + maxLength` (clipped to the disk). */
export async function mapEntries(chain: ImageChain, start: number, maxLength?: number): Promise<MapEntry[]> {
  const driver = chain.top;
  const end = Math.min(driver.length, maxLength === undefined ? driver.length : start + maxLength);
  const entries: MapEntry[] = [];
  for (let offset = Math.min(start, end); offset < end; ) {
    const status = await statusOf(driver, offset, Math.min(MAP_STEP, end - offset));
    const layer = chain.layers[Math.min(status.depth, chain.layers.length - 1)];
    const hasOffset = status.offset !== undefined && status.compressed !== true;
    entries.push({
      start: offset,
      length: status.length,
      depth: status.depth,
      // qemu-img: present = BDRV_BLOCK_ALLOCATED at that depth (a zero cluster is present; zeroes
      // because the chain ends, or a backing file is shorter, are not). Raw holds every byte.
      present: status.allocated ?? true,
      zero: status.zero,
      data: status.data,
      ...(hasOffset ? { offset: status.offset, filename: layer?.filename ?? '' } : {}),
    });
    offset += status.length;
  }
  return entries;
}
