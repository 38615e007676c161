/**
 * Byte-stream helpers over lists of memory views (the data-in and data-out buffers of a SCSI
 * command, as views over guest memory in descriptor order).
 */

/** Sum of the view lengths. */
export function viewsLength(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.length;
  return n;
}

/** Views covering bytes `[start, start + length)` of the concatenation (clamped to what exists). */
export function sliceViews(views: readonly Uint8Array[], start: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = start;
  let left = length;
  for (const v of views) {
    if (left <= 0) break;
    if (skip >= v.length) {
      skip -= v.length;
      continue;
    }
    const n = Math.min(v.length - skip, left);
    out.push(v.subarray(skip, skip + n));
    skip = 0;
    left -= n;
  }
  return out;
}

/** Copies `source` into the views in order; returns the bytes copied (at most the views' total). */
export function copyToViews(views: readonly Uint8Array[], source: Uint8Array): number {
  let done = 0;
  for (const v of views) {
    if (done >= source.length) break;
    const n = Math.min(v.length, source.length - done);
    v.set(source.subarray(done, done + n));
    done += n;
  }
  return done;
}

/** Copies the first `length` bytes of the views into a new array (the caller bounds `length`). */
export function gatherViews(views: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(Math.min(length, viewsLength(views)));
  let done = 0;
  for (const v of views) {
    if (done >= out.length) break;
    const n = Math.min(v.length, out.length - done);
    out.set(v.subarray(0, n), done);
    done += n;
  }
  return out;
}
