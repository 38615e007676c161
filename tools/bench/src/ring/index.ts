import { alternate } from '../measure.js';
import { row, type Row } from '../report.js';
import type { Suite, SuiteOptions } from '../suite.js';
import { baselineRoundTrips, flatRing } from './baseline.js';
import { contractFloorRoundTripper } from './floor.js';
import { packedBaselineRoundTrips, packedRoundTripper } from './packed.js';
import { splitRoundTripper } from './split.js';
import { crossThreadRoundTrips } from './threads.js';

async function run(options: SuiteOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const singleOps = Math.max(10_000, Math.round(2_000_000 * options.scale));
  const threadOps = Math.max(10_000, Math.round(400_000 * options.scale));
  for (const segments of [1, 4]) {
    const ours = splitRoundTripper(segments, {}, options.now);
    const flat = flatRing(new SharedArrayBuffer(1 << 16), 256);
    // Warm both sides up before measuring.
    ours(singleOps);
    baselineRoundTrips(flat, segments, singleOps, 0x8000);
    options.log(`split ${segments}-descriptor chains, one thread`);
    const single = await alternate(options.repeats, () => ours(singleOps), () => baselineRoundTrips(flat, segments, singleOps, 0x8000, options.now));
    rows.push(row(`split ${segments}-desc round trips, 1 thread`, options.clock === 'cpu' ? 'ops/cpu-s' : 'ops/s', single.ours, single.peer));
    if (segments === 1) {
      // Not ours: the DeviceQueue/DriverQueue contract's shape with no checks at all (floor.ts):
      // the ceiling for any implementation of the contract on this engine.
      const floor = contractFloorRoundTripper(options.now);
      const flatForFloor = flatRing(new SharedArrayBuffer(1 << 16), 256);
      floor(singleOps);
      options.log('split 1-descriptor contract floor, one thread');
      const f = await alternate(options.repeats, () => floor(singleOps), () => baselineRoundTrips(flatForFloor, 1, singleOps, 0x8000, options.now));
      rows.push(row('split 1-desc FLOOR (contract, no checks)', options.clock === 'cpu' ? 'ops/cpu-s' : 'ops/s', f.ours, f.peer));
    }
  }
  for (const segments of [1, 4]) {
    const ours = packedRoundTripper(segments, options.now);
    const flat = new SharedArrayBuffer(1 << 16);
    ours(singleOps);
    packedBaselineRoundTrips(flat, 256, segments, singleOps, 0x8000);
    options.log(`packed ${segments}-descriptor chains, one thread`);
    const single = await alternate(options.repeats, () => ours(singleOps), () => packedBaselineRoundTrips(flat, 256, segments, singleOps, 0x8000, options.now));
    rows.push(row(`packed ${segments}-desc round trips, 1 thread`, options.clock === 'cpu' ? 'ops/cpu-s' : 'ops/s', single.ours, single.peer));
  }
  for (const layout of ['split', 'packed'] as const) {
    for (const segments of [1, 4]) {
      options.log(`${layout} ${segments}-descriptor chains, two workers`);
      const repeats = Math.max(1, Math.ceil(options.repeats / 2));
      const cross = await alternate(
        repeats,
        () => crossThreadRoundTrips(layout, 'ours', segments, threadOps),
        () => crossThreadRoundTrips(layout, 'baseline', segments, threadOps),
      );
      rows.push(row(`${layout} ${segments}-desc round trips, 2 workers`, 'ops/s', cross.ours, cross.peer));
    }
  }
  return rows;
}

/** `pnpm bench ring`: split (and packed, once exported) virtqueues against a bare typed-array loop. */
export const suite: Suite = {
  name: 'ring',
  description: 'Virtqueue round trips (driver add -> device pop -> device push -> driver getUsed); peer = bare typed-array loop',
  peerTitle: 'baseline',
  run,
};
