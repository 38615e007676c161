import { VmmError } from '../errors.js';
import type { WorkloadContext } from './guest-devices.js';

export interface RngResult {
  readonly type: 'rng';
  readonly bytes: number;
  readonly requests: number;
  readonly elapsedMs: number;
  /** Distinct byte values seen (of 256): a dead source (all zeroes, a constant) shows here. */
  readonly distinctValues: number;
}

/** Bytes asked of the device per request. */
const REQUEST_BYTES = 4096;

/**
 * `rng`: reads `bytes` of entropy from virtio-rng in 4 KiB requests and sanity-checks it: the
 * device must fill what it reports, and 4 KiB or more of entropy must show at least 200 of the
 * 256 byte values (a uniform source misses that with probability below 10^-30).
 */
export async function runRng(context: WorkloadContext, bytes: number): Promise<RngResult> {
  const rng = context.rng();
  const seen = new Uint8Array(256);
  let got = 0;
  let requests = 0;
  let empty = 0;
  const start = performance.now();
  while (got < bytes) {
    const want = Math.min(REQUEST_BYTES, bytes - got);
    const data = await rng.read(want);
    requests++;
    if (data.length > want) throw new VmmError('GUEST_ERROR', `rng: the device returned ${data.length} bytes for a ${want}-byte buffer`);
    if (data.length === 0 && ++empty > 1000) throw new VmmError('GUEST_ERROR', 'rng: the device keeps returning no entropy');
    for (const b of data) seen[b] = 1;
    got += data.length;
    context.progress(got / bytes);
  }
  const distinctValues = seen.reduce((a, b) => a + b, 0);
  if (bytes >= REQUEST_BYTES && distinctValues < 200) {
    throw new VmmError('GUEST_ERROR', `rng: only ${distinctValues} distinct byte values in ${bytes} bytes: not random`);
  }
  return { type: 'rng', bytes: got, requests, elapsedMs: performance.now() - start, distinctValues };
}
