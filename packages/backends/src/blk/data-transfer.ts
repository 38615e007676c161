import type { BlockDriver } from '@virtio-ts/block';

/**
 * Scatter-gather I/O between guest memory views and a {@link BlockDriver}.
 *
 * Each view that starts at an aligned disk offset and has an aligned length goes to the driver
 * as is: the driver reads into, or writes from, guest memory with no copy. Runs of unaligned
 * views (a guest that splits a sector across descriptors, H14) go through a bounce buffer of at
 * most {@link BOUNCE_LIMIT} bytes, so no allocation is sized by the guest beyond that.
 */

/** Largest bounce buffer, a multiple of every request alignment (4096). */
export const BOUNCE_LIMIT = 256 * 1024;

/** One step of a transfer: either a direct view or a bounce over several view pieces. */
type Step =
  | { readonly kind: 'direct'; readonly offset: number; readonly view: Uint8Array }
  | { readonly kind: 'bounce'; readonly offset: number; readonly pieces: readonly Uint8Array[]; readonly length: number };

/**
 * Splits `views` (whose total is a multiple of `alignment`) into steps whose offsets and lengths
 * are multiples of `alignment`. Exported for tests.
 */
export function planTransfer(offset: number, views: readonly Uint8Array[], alignment: number): Step[] {
  const steps: Step[] = [];
  let position = offset;
  let i = 0;
  let within = 0; // bytes of views[i] already planned
  while (i < views.length) {
    const view = views[i]!;
    if (view.length === within) {
      i++;
      within = 0;
      continue;
    }
    if (within === 0 && position % alignment === 0 && view.length % alignment === 0) {
      steps.push({ kind: 'direct', offset: position, view });
      position += view.length;
      i++;
      continue;
    }
    // Bounce: collect pieces until an aligned position at a view boundary, or the limit.
    const pieces: Uint8Array[] = [];
    let length = 0;
    while (i < views.length) {
      const v = views[i]!;
      const room = BOUNCE_LIMIT - length;
      const take = Math.min(v.length - within, room);
      if (take > 0) pieces.push(v.subarray(within, within + take));
      length += take;
      within += take;
      if (within === v.length) {
        i++;
        within = 0;
        if ((position + length) % alignment === 0) break;
      }
      if (length === BOUNCE_LIMIT) break;
    }
    steps.push({ kind: 'bounce', offset: position, pieces, length });
    position += length;
  }
  return steps;
}

function isAligned(offset: number, view: Uint8Array, alignment: number): boolean {
  return offset % alignment === 0 && view.length % alignment === 0 && view.length > 0;
}

/** Reads `[offset, offset + total)` of the disk into `views`. */
export async function readInto(driver: BlockDriver, offset: number, views: readonly Uint8Array[], alignment: number): Promise<void> {
  // The common case (one aligned segment): straight to the driver, no plan, no Promise.all.
  if (views.length === 1 && isAligned(offset, views[0]!, alignment)) return driver.read(offset, views[0]!);
  await Promise.all(
    planTransfer(offset, views, alignment).map(async (step) => {
      if (step.kind === 'direct') return driver.read(step.offset, step.view);
      const bounce = new Uint8Array(step.length);
      await driver.read(step.offset, bounce);
      let done = 0;
      for (const piece of step.pieces) {
        piece.set(bounce.subarray(done, done + piece.length));
        done += piece.length;
      }
    }),
  );
}

/** Writes `views` to the disk at `offset`. */
export async function writeFrom(driver: BlockDriver, offset: number, views: readonly Uint8Array[], alignment: number): Promise<void> {
  if (views.length === 1 && isAligned(offset, views[0]!, alignment)) return driver.write(offset, views[0]!);
  await Promise.all(
    planTransfer(offset, views, alignment).map((step) => {
      if (step.kind === 'direct') return driver.write(step.offset, step.view);
      const bounce = new Uint8Array(step.length);
      let done = 0;
      for (const piece of step.pieces) {
        bounce.set(piece, done);
        done += piece.length;
      }
      return driver.write(step.offset, bounce);
    }),
  );
}
