import { describe, expect, it } from 'vitest';
import { diskRows, NET_CASES, netBenchConfig, netFigure, type DiskSample, type VmmReport } from './index.js';

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

describe('vmm suite: net rows', () => {
  it('runs net-bench from vm0 to vm1 on one switch with the MTU the packet size needs', () => {
    for (const c of NET_CASES) {
      const config = netBenchConfig(c, 500) as { vms: { devices: { mtu: number; backend: string }[]; workloads: { type: string; size?: number }[] }[] };
      expect(config.vms).toHaveLength(2);
      expect(config.vms.map((vm) => vm.devices[0]!.backend)).toEqual(['switch:lan0', 'switch:lan0']);
      expect(c.size).toBeLessThanOrEqual(c.mtu);
      expect(config.vms[0]!.workloads).toEqual([{ type: 'net-bench', size: c.size, runtime: '500ms' }]);
      expect(config.vms[1]!.workloads).toEqual([]);
    }
    expect(NET_CASES.map((c) => [c.size, c.metric])).toEqual([
      [64, 'packets/s'],
      [1500, 'MiB/s'],
      [65535, 'MiB/s'],
    ]);
  });

  it('reads packets/s and MiB/s as the peer received them', () => {
    const report: VmmReport = { vms: [{ results: [{ type: 'net-bench', elapsedNs: 2e9, receivedPackets: 1000, receivedBytes: 4 * 2 ** 20 }] }, { results: [] }], results: [] };
    expect(netFigure(report, NET_CASES[0]!)).toBe(500);
    expect(netFigure(report, NET_CASES[1]!)).toBe(2);
    expect(() => netFigure({ results: [] }, NET_CASES[0]!)).toThrow(/lacks the net-bench result/);
  });
});
