import type { CompareCommand } from '../cli/parse.js';
import { ProgressPrinter } from '../format/progress.js';
import type { ImageChain } from '../image/image-host.js';
import { CHUNK_SIZE, firstDifference, isZero, SECTOR_SIZE, statusOf } from './copy.js';
import type { CommandContext } from './context.js';

/** `vimg compare` exit statuses, as qemu-img's. */
export const COMPARE_EQUAL = 0;
export const COMPARE_DIFFERENT = 1;
export const COMPARE_ERROR = 2;

/**
 * `vimg compare`: exit 0 when the guest-visible contents are equal, 1 when they differ, 2 on an
 * error. Without -s, the part of the larger image past the smaller must read as zeroes.
 */
export async function runCompare(command: CompareCommand, context: CommandContext): Promise<number> {
  const say = (text: string): void => {
    if (!command.quiet) context.io.stdout(text);
  };
  const first = await context.host.open(command.filename1, { ...(command.format !== undefined ? { format: command.format } : {}), writable: false });
  let second: ImageChain | undefined;
  try {
    second = await context.host.open(command.filename2, { ...(command.format2 !== undefined ? { format: command.format2 } : {}), writable: false });
    const a = first.top;
    const b = second.top;
    const progress = command.progress ? new ProgressPrinter(context.io.stdout) : undefined;
    progress?.start();
    if (a.length !== b.length) {
      if (command.strict) {
        say('Strict mode: Image size mismatch!\n');
        return COMPARE_DIFFERENT;
      }
      say('Warning: Image size mismatch!\n');
    }
    const common = Math.min(a.length, b.length);
    const total = Math.max(a.length, b.length);
    const bufferA = new Uint8Array(CHUNK_SIZE);
    const bufferB = new Uint8Array(CHUNK_SIZE);
    for (let offset = 0; offset < common; ) {
      const want = Math.min(CHUNK_SIZE, common - offset);
      const [statusA, statusB] = await Promise.all([statusOf(a, offset, want), statusOf(b, offset, want)]);
      const length = Math.min(statusA.length, statusB.length);
      if (!(statusA.zero && statusB.zero)) {
        const viewA = bufferA.subarray(0, length);
        const viewB = bufferB.subarray(0, length);
        await Promise.all([a.read(offset, viewA), b.read(offset, viewB)]);
        const diff = firstDifference(viewA, viewB);
        if (diff >= 0) {
          progress?.end();
          say(`Content mismatch at offset ${sectorFloor(offset + diff)}!\n`);
          return COMPARE_DIFFERENT;
        }
      }
      offset += length;
      progress?.update(offset, total);
    }
    const longer = a.length > b.length ? a : b;
    for (let offset = common; offset < total; ) {
      const want = Math.min(CHUNK_SIZE, total - offset);
      const status = await statusOf(longer, offset, want);
      if (!status.zero) {
        const view = bufferA.subarray(0, status.length);
        await longer.read(offset, view);
        if (!isZero(view)) {
          const diff = view.findIndex((byte) => byte !== 0);
          progress?.end();
          say(`Content mismatch at offset ${sectorFloor(offset + diff)}!\n`);
          return COMPARE_DIFFERENT;
        }
      }
      offset += status.length;
      progress?.update(offset, total);
    }
    progress?.end();
    say('Images are identical.\n');
    return COMPARE_EQUAL;
  } finally {
    await second?.close();
    await first.close();
  }
}

function sectorFloor(offset: number): number {
  return offset - (offset % SECTOR_SIZE);
}
