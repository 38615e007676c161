import type { VerifyWorkloadConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import type { WorkloadContext } from './guest-devices.js';
import { fillPattern, findPatternMismatch } from './pattern.js';
import { runPool } from './pool.js';

/** Default bytes `verify` covers when the config gives no size: the whole disk up to this. */
export const DEFAULT_VERIFY_SIZE = 64 * 2 ** 20;

export interface VerifyResult {
  readonly type: 'verify';
  readonly disk: number;
  /** Bytes written, flushed, read back and compared. */
  readonly bytes: number;
  readonly requests: number;
  readonly bs: number;
  /** The pattern's seed: the image holds `fillPattern(seed)` over `[0, bytes)` after the run. */
  readonly seed: number;
  readonly writeMs: number;
  readonly readMs: number;
}

/**
 * `verify`: writes the seeded pattern over the first `size` bytes of the disk in `bs` requests
 * (`iodepth` in flight), flushes, reads every block back and compares. A mismatch ends the run
 * with VERIFY_MISMATCH naming the disk offset.
 */
export async function runVerify(context: WorkloadContext, config: VerifyWorkloadConfig, seed: number): Promise<VerifyResult> {
  const disk = context.disk(config.disk);
  const bs = config.bs;
  const size = Math.min(config.size ?? DEFAULT_VERIFY_SIZE, disk.capacity);
  const blocks = Math.floor(size / bs);
  if (blocks === 0) throw new VmmError('GUEST_ERROR', `verify: disk ${config.disk} (${disk.capacity} bytes) is smaller than one ${bs}-byte block`);
  const depth = Math.min(config.iodepth, blocks);
  const buffers = Array.from({ length: depth }, () => new Uint8Array(bs));
  const total = blocks * 2;
  let done = 0;
  const writeStart = performance.now();
  await runPool(blocks, depth, async (block, slot) => {
    const buffer = buffers[slot]!;
    fillPattern(buffer, block * bs, seed);
    await disk.write(block * bs, buffer);
    context.progress(++done / total);
  });
  await disk.flush();
  const writeMs = performance.now() - writeStart;
  const readStart = performance.now();
  await runPool(blocks, depth, async (block) => {
    const data = await disk.read(block * bs, bs);
    const at = findPatternMismatch(data, block * bs, seed);
    if (at >= 0) {
      const offset = block * bs + at;
      throw new VmmError('VERIFY_MISMATCH', `verify: disk ${config.disk} read back different data at byte ${offset}`, { offset });
    }
    context.progress(++done / total);
  });
  const readMs = performance.now() - readStart;
  return { type: 'verify', disk: config.disk, bytes: blocks * bs, requests: blocks * 2 + 1, bs, seed, writeMs, readMs };
}
