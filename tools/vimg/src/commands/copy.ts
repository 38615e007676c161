import type { BlockDriver, BlockStatus } from '@virtio-ts/block';

/** qemu-img compares and copies in 512-byte sectors; mismatch offsets are sector-aligned. */
export const SECTOR_SIZE = 512;

/** The largest request vimg sends (qemu-img convert's default buffer is 2 MiB). */
export const CHUNK_SIZE = 2 * 1024 * 1024;

/**
 * Allocation status with a fallback: a driver without blockStatus reports everything as data.
 * The returned length is clipped to `length` and is at least one byte.
 */
export async function statusOf(driver: BlockDriver, offset: number, length: number): Promise<BlockStatus> {
  if (driver.blockStatus === undefined) return { length, data: true, zero: false, depth: 0 };
  const status = await driver.blockStatus(offset, length);
  return { ...status, length: Math.max(1, Math.min(length, status.length)) };
}

/** A zero block that {@link isZero} compares against. */
const ZEROES = new Uint8Array(64 * 1024);

/** True when every byte is zero (a native memcmp against a zero block, 64 KiB at a time). */
export function isZero(buffer: Uint8Array): boolean {
  if (buffer.length === 0) return true;
  if (buffer[0] !== 0 || buffer[buffer.length - 1] !== 0) return false;
  for (let at = 0; at < buffer.length; at += ZEROES.length) {
    const n = Math.min(ZEROES.length, buffer.length - at);
    if (Buffer.compare(buffer.subarray(at, at + n), n === ZEROES.length ? ZEROES : ZEROES.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Index of the first differing byte, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i += 1) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}

/** Runs `task` over `items` with at most `parallel` in flight; rejects on the first failure. */
export async function runPool<T>(items: Iterable<T>, parallel: number, task: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failure: unknown;
  let failed = false;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failed) return;
      const next = iterator.next();
      if (next.done === true) return;
      try {
        await task(next.value);
      } catch (error) {
        if (!failed) {
          failed = true;
          failure = error;
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  if (failed) throw failure;
}
