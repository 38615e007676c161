import type { BenchWorkloadConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import { LatencyHistogram, type LatencyHistogramData } from '../stats/latency-histogram.js';
import type { WorkloadContext } from './guest-devices.js';

export interface BenchResult {
  readonly type: 'bench';
  readonly disk: number;
  readonly rw: BenchWorkloadConfig['rw'];
  readonly bs: number;
  readonly iodepth: number;
  readonly numjobs: number;
  readonly reads: number;
  readonly writes: number;
  readonly bytes: number;
  /** Wall time from the first submission to the last completion, in ns. */
  readonly elapsedNs: number;
  /** Completion latency of every request (submission to completion), ns. */
  readonly latency: LatencyHistogramData;
  /**
   * Filled in by the VMM: time spent inside the backing store's read/write during this workload
   * (ns, overlapping requests each counted) and how many calls, for the stack overhead per request.
   */
  readonly backingNs?: number;
  readonly backingRequests?: number;
}

/** xorshift32: a small, fast, seeded generator (random offsets need speed, not quality). */
function xorshift32(seed: number): () => number {
  let state = seed >>> 0 || 0x9e37_79b9;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>>= 0);
  };
}

/**
 * `bench`: fio's job model on one disk. `numjobs` jobs each keep `iodepth` requests of `bs`
 * bytes in flight for `runtime` ms: sequential (`read`, `write`) from a per-job start offset,
 * or random offsets aligned to `bs` (`randread`, `randwrite`, `randrw` with `rwmixread` % reads),
 * over the first `size` bytes of the disk. Records every request's latency.
 */
export async function runBench(context: WorkloadContext, config: BenchWorkloadConfig, seed: number): Promise<BenchResult> {
  const disk = context.disk(config.disk);
  const bs = config.bs;
  const span = Math.min(config.size ?? disk.capacity, disk.capacity);
  const blocks = Math.floor(span / bs);
  if (blocks === 0) throw new VmmError('GUEST_ERROR', `bench: disk ${config.disk} (${disk.capacity} bytes) is smaller than one ${bs}-byte block`);
  const writes = config.rw === 'write' || config.rw === 'randwrite' || config.rw === 'randrw';
  if (writes && disk.readOnly) throw new VmmError('GUEST_ERROR', `bench: rw=${config.rw} on read-only disk ${config.disk}`);
  const random = config.rw.startsWith('rand');
  const histogram = new LatencyHistogram();
  // Written data: something other than zeroes, so a sparse-aware backing store cannot skip it.
  const data = new Uint8Array(bs).fill(0xa5);
  let reads = 0;
  let writeCount = 0;
  const start = performance.now();
  const deadline = start + config.runtime;
  let lastProgress = 0;
  const job = async (jobIndex: number): Promise<void> => {
    const next = xorshift32(seed + jobIndex * 0x1000_0001);
    let sequential = Math.floor((blocks * jobIndex) / config.numjobs);
    const lane = async (): Promise<void> => {
      while (performance.now() < deadline) {
        const block = random ? next() % blocks : sequential++ % blocks;
        const isWrite = config.rw === 'randrw' ? next() % 100 >= config.rwmixread : writes;
        const t0 = performance.now();
        if (isWrite) await disk.write(block * bs, data);
        else await disk.read(block * bs, bs);
        const t1 = performance.now();
        histogram.record((t1 - t0) * 1e6);
        if (isWrite) writeCount++;
        else reads++;
        if (t1 - lastProgress > 100) {
          lastProgress = t1;
          context.progress(Math.min(1, (t1 - start) / config.runtime));
        }
      }
    };
    const lanes: Promise<void>[] = [];
    for (let l = 0; l < config.iodepth; l++) lanes.push(lane());
    await Promise.all(lanes);
  };
  const jobs: Promise<void>[] = [];
  for (let j = 0; j < config.numjobs; j++) jobs.push(job(j));
  await Promise.all(jobs);
  const elapsedNs = (performance.now() - start) * 1e6;
  context.progress(1);
  return {
    type: 'bench',
    disk: config.disk,
    rw: config.rw,
    bs,
    iodepth: config.iodepth,
    numjobs: config.numjobs,
    reads,
    writes: writeCount,
    bytes: (reads + writeCount) * bs,
    elapsedNs,
    latency: histogram.toJSON(),
  };
}
