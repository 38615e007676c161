import { describe, expect, it } from 'vitest';
import { checkExitCode, checkReportToJson, formatCheckHuman, formatRepairHuman, type CheckReport } from './check-result.js';
import { formatImageInfoHuman, imageInfoToJson, toQemuJson, type ImageInfo } from './image-info.js';
import { formatMapHuman, formatMapJson, mergeMapEntries } from './map-entry.js';
import { formatProgress, ProgressPrinter } from './progress.js';

// Golden outputs below were printed by qemu-img 7.2.22 (Debian 12) on this machine.
const top: ImageInfo = {
  filename: 'top.qcow2',
  format: 'qcow2',
  virtualSize: 4194304,
  actualSize: 339968,
  clusterSize: 65536,
  dirtyFlag: false,
  backingFilename: 'base.qcow2',
  fullBackingFilename: 'base.qcow2',
  backingFilenameFormat: 'qcow2',
  formatSpecific: { type: 'qcow2', data: { 'compression-type': 'zlib', compat: '1.1', 'lazy-refcounts': false, 'refcount-bits': 16, corrupt: false, 'extended-l2': false } },
};

describe('info formatting (qemu 7.2 layout)', () => {
  it('human', () => {
    expect(formatImageInfoHuman(top)).toBe(`image: top.qcow2
file format: qcow2
virtual size: 4 MiB (4194304 bytes)
disk size: 332 KiB
cluster_size: 65536
backing file: base.qcow2
backing file format: qcow2
Format specific information:
    compat: 1.1
    compression type: zlib
    lazy refcounts: false
    refcount bits: 16
    corrupt: false
    extended l2: false
`);
  });

  it('human: raw, no cluster size; actual path shown when it differs; dirty', () => {
    const text = formatImageInfoHuman({ filename: 'r', format: 'raw', virtualSize: 197120, actualSize: 200704, backingFilename: 'b', fullBackingFilename: '/x/b', dirtyFlag: true });
    expect(text).toBe('image: r\nfile format: raw\nvirtual size: 192 KiB (197120 bytes)\ndisk size: 196 KiB\ncleanly shut down: no\nbacking file: b (actual path: /x/b)\n');
  });

  it('json: same keys and order as qemu-img', () => {
    expect(toQemuJson(imageInfoToJson(top))).toBe(`{
    "backing-filename-format": "qcow2",
    "virtual-size": 4194304,
    "filename": "top.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 339968,
    "format-specific": {
        "type": "qcow2",
        "data": {
            "compat": "1.1",
            "compression-type": "zlib",
            "lazy-refcounts": false,
            "refcount-bits": 16,
            "corrupt": false,
            "extended-l2": false
        }
    },
    "full-backing-filename": "base.qcow2",
    "backing-filename": "base.qcow2",
    "dirty-flag": false
}`);
  });

  it('snapshot table', () => {
    const text = formatImageInfoHuman({
      filename: 't',
      format: 'qcow2',
      virtualSize: 1,
      snapshots: [{ id: '1', name: 'snap1', vmStateSize: 0, dateSec: 0, dateNsec: 0, vmClockNsec: 3_723_004_000_000, icount: 0 }],
    });
    const lines = text.split('\n');
    expect(lines[4]).toBe('Snapshot list:');
    expect(lines[5]).toBe('ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT');
    expect(lines[6]).toMatch(/^1 {9}snap1 {17}0 B \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 01:02:03\.004 {10}0$/);
  });
});

const clean: CheckReport = { filename: 'top.qcow2', format: 'qcow2', checkErrors: 0, corruptions: 0, leaks: 0, corruptionsFixed: 0, leaksFixed: 0, imageEndOffset: 524288, totalClusters: 64, allocatedClusters: 1, fragmentedClusters: 0, compressedClusters: 0 };

describe('check formatting and exit codes (qemu-img check)', () => {
  it('clean image: human, json, exit 0', () => {
    expect(formatCheckHuman(clean)).toBe('No errors were found on the image.\n1/64 = 1.56% allocated, 0.00% fragmented, 0.00% compressed clusters\nImage end offset: 524288\n');
    expect(toQemuJson(checkReportToJson(clean))).toBe(`{
    "image-end-offset": 524288,
    "total-clusters": 64,
    "check-errors": 0,
    "allocated-clusters": 1,
    "filename": "top.qcow2",
    "format": "qcow2"
}`);
    expect(checkExitCode(clean)).toBe(0);
  });

  it('leaks: exit 3; corruptions: exit 2; check errors: exit 1', () => {
    const leaky = { ...clean, leaks: 1 };
    expect(formatCheckHuman(leaky)).toBe('\n1 leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n1/64 = 1.56% allocated, 0.00% fragmented, 0.00% compressed clusters\nImage end offset: 524288\n');
    expect(checkReportToJson(leaky)['leaks']).toBe(1);
    expect(checkExitCode(leaky)).toBe(3);
    expect(checkExitCode({ ...leaky, corruptions: 2 })).toBe(2);
    expect(formatCheckHuman({ ...leaky, corruptions: 2 })).toContain('\n2 errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n');
    expect(checkExitCode({ ...leaky, corruptions: 2, checkErrors: 1 })).toBe(1);
  });

  it('json key order with every counter (printed by qemu-img 7.2 for a corrupt image)', () => {
    const report = { ...clean, filename: 'c.qcow2', imageEndOffset: 589824, compressedClusters: 1, corruptions: 1, allocatedClusters: 4, fragmentedClusters: 3 };
    expect(toQemuJson(checkReportToJson(report))).toBe(`{
    "image-end-offset": 589824,
    "compressed-clusters": 1,
    "total-clusters": 64,
    "corruptions": 1,
    "check-errors": 0,
    "allocated-clusters": 4,
    "filename": "c.qcow2",
    "format": "qcow2",
    "fragmented-clusters": 3
}`);
  });

  it('repair paragraph', () => {
    expect(formatRepairHuman(1, 0)).toBe('The following inconsistencies were found and repaired:\n\n    1 leaked clusters\n    0 corruptions\n\nDouble checking the fixed image now...\n');
  });
});

describe('map formatting (qemu-img map)', () => {
  const entries = [
    { start: 0, length: 65536, depth: 0, present: true, zero: false, data: true, offset: 327680, filename: 'top.qcow2' },
    { start: 65536, length: 65536, depth: 1, present: false, zero: true, data: false },
    { start: 131072, length: 4063232, depth: 1, present: false, zero: true, data: false },
  ];

  it('json, byte for byte', () => {
    expect(formatMapJson(entries)).toBe(`[{ "start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 327680},
{ "start": 65536, "length": 4128768, "depth": 1, "present": false, "zero": true, "data": false}]
`);
  });

  it('human lists data runs only', () => {
    expect(formatMapHuman(entries)).toBe('Offset          Length          Mapped to       File\n0               0x10000         0x50000         top.qcow2\n');
  });

  it('merges only contiguous host offsets', () => {
    const a = { start: 0, length: 10, depth: 0, present: true, zero: false, data: true, offset: 100 };
    expect(mergeMapEntries([a, { ...a, start: 10, offset: 110 }])).toHaveLength(1);
    expect(mergeMapEntries([a, { ...a, start: 10, offset: 200 }])).toHaveLength(2);
  });
});

describe('progress (qemu-progress.c)', () => {
  it('"    (%3.2f/100%)\\r" and a final newline', () => {
    expect(formatProgress(0)).toBe('    (0.00/100%)\r');
    expect(formatProgress(100)).toBe('    (100.00/100%)\r');
    let out = '';
    const progress = new ProgressPrinter((text) => (out += text));
    progress.start();
    progress.update(1, 1);
    progress.end();
    // What qemu-img convert -p printed for a small image.
    expect(out).toBe('    (0.00/100%)\r    (100.00/100%)\r    (100.00/100%)\r\n');
  });

  it('prints only when the value moved by more than 1%', () => {
    let lines = 0;
    const progress = new ProgressPrinter(() => (lines += 1));
    progress.start();
    for (let i = 1; i <= 1000; i += 1) progress.update(i, 1000);
    expect(lines).toBeGreaterThan(40);
    expect(lines).toBeLessThan(100);
  });
});
