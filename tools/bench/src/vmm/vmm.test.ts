import { describe, expect, it } from 'vitest';
import { diskRows, type DiskSample } from './index.js';

const sample = (iops: number, mibps: number, overheadNs: number): DiskSample => ({ iops, mibps, overheadNs });

describe('vmm suite: blk and scsi rows', () => {
  it('puts the scsi rows after the blk rows of the same workload, blk as their baseline', () => {
    const rows = diskRows('memory, 4 KiB randread QD1', [sample(100, 1, 5000), sample(300, 3, 7000), sample(200, 2, 6000)], [sample(50, 0.5, 9000), sample(150, 1.5, 8000), sample(100, 1, 1000)]);
    expect(rows.map((r) => r.row)).toEqual([
      'memory, 4 KiB randread QD1: IOPS',
      'memory, 4 KiB randread QD1: bandwidth',
      'memory, 4 KiB randread QD1: stack overhead',
      'memory, 4 KiB randread QD1, scsi: IOPS',
      'memory, 4 KiB randread QD1, scsi: bandwidth',
      'memory, 4 KiB randread QD1, scsi: stack overhead',
    ]);
    // Medians; the scsi rows carry the blk median beside them and the ratio scsi / blk.
    expect(rows[0]).toMatchObject({ ours: 200, peer: null, ratio: null, unit: 'IOPS' });
    expect(rows[3]).toMatchObject({ ours: 100, peer: 200, ratio: 0.5, unit: 'IOPS' });
    expect(rows[4]).toMatchObject({ ours: 1, peer: 2, ratio: 0.5, unit: 'MiB/s' });
    // Lower is better for the overhead: no ratio that would read the wrong way.
    expect(rows[5]).toMatchObject({ ours: 8000, peer: null, ratio: null, unit: 'ns/req' });
  });
});
