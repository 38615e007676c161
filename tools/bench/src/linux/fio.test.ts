import { describe, expect, it } from 'vitest';
import { FIO_JOBS, fioScript, parseFioResult } from './fio.js';

const fioJson = (readIops: number, writeIops: number): string =>
  JSON.stringify({ 'fio version': 'fio-3.33', jobs: [{ jobname: 'j0', read: { iops: readIops, bw_bytes: readIops * 4096 }, write: { iops: writeIops, bw_bytes: writeIops * 4096 } }] }, null, 2);

describe('fio output from the guest console', () => {
  it('parses each job between its markers, with CRLF line ends and kernel noise before the JSON', () => {
    const console = [
      'VT-RUN uptime=4.2',
      'FIO-JSON-BEGIN 0',
      '[    5.1] random: crng init done',
      fioJson(1000.5, 0),
      'FIO-JSON-END 0',
      'FIO-JSON-BEGIN 1',
      fioJson(0, 250),
      'FIO-JSON-END 1',
    ].join('\r\n') + '\r\n';
    expect(parseFioResult(console, 0)).toEqual({ iops: 1000.5, bandwidth: 1000.5 * 4096 });
    expect(parseFioResult(console, 1)).toEqual({ iops: 250, bandwidth: 250 * 4096 });
  });

  it('refuses a job whose output is missing, cut short or not fio\'s JSON', () => {
    expect(() => parseFioResult('FIO-JSON-BEGIN 0\n', 0)).toThrow(/no output between the markers/);
    expect(() => parseFioResult('FIO-JSON-BEGIN 0\nfio: error\nFIO-JSON-END 0\n', 0)).toThrow(/no JSON/);
    expect(() => parseFioResult('FIO-JSON-BEGIN 0\n{"jobs":[]}\nFIO-JSON-END 0\n', 0)).toThrow(/without jobs/);
    expect(() => parseFioResult('FIO-JSON-BEGIN 10\n{}\nFIO-JSON-END 10\n', 1)).toThrow(/no output/);
  });

  it('the guest script runs every job once, in order, with the runtime and span', () => {
    const script = fioScript(FIO_JOBS, 5, '256M');
    expect(script.match(/^\/usr\/bin\/fio /gm)).toHaveLength(FIO_JOBS.length);
    expect(script.match(/^echo FIO-JSON-BEGIN \d+$/gm)).toHaveLength(FIO_JOBS.length);
    expect(script.match(/^echo FIO-JSON-END \d+$/gm)).toHaveLength(FIO_JOBS.length);
    expect(script).toContain('--rw=randwrite --bs=4k --iodepth=32 --size=256M --numjobs=2');
    expect(script).toContain('--runtime=5 --output-format=json\necho FIO-JSON-END 5');
  });
});
