/** One fio job of the linux suite, run inside the guest against /dev/vda. */
export interface FioJob {
  /** Row name, e.g. `4 KiB randread QD1`. */
  readonly name: string;
  readonly rw: 'randread' | 'randwrite' | 'read' | 'write';
  readonly bs: string;
  readonly iodepth: number;
}

/** The jobs: 4 KiB random read/write at iodepth 1 and 32, 1 MiB sequential read and write. */
export const FIO_JOBS: readonly FioJob[] = [
  { name: '4 KiB randread QD1', rw: 'randread', bs: '4k', iodepth: 1 },
  { name: '4 KiB randread QD32', rw: 'randread', bs: '4k', iodepth: 32 },
  { name: '4 KiB randwrite QD1', rw: 'randwrite', bs: '4k', iodepth: 1 },
  { name: '4 KiB randwrite QD32', rw: 'randwrite', bs: '4k', iodepth: 32 },
  { name: '1 MiB seq read QD8', rw: 'read', bs: '1M', iodepth: 8 },
  { name: '1 MiB seq write QD8', rw: 'write', bs: '1M', iodepth: 8 },
];

/** What one fio job achieved (reads and writes together). */
export interface FioResult {
  readonly iops: number;
  /** Bytes per second. */
  readonly bandwidth: number;
}

const BEGIN = 'FIO-JSON-BEGIN';
const END = 'FIO-JSON-END';

/**
 * The guest script: every job in turn on /dev/vda over `span`, two jobs (one per vCPU, so one per
 * blk-mq queue) reported as one group, fio's JSON printed between markers for the host to parse.
 */
export function fioScript(jobs: readonly FioJob[], runtimeSeconds: number, span: string): string {
  const lines = jobs.map((job, i) =>
    [
      `echo ${BEGIN} ${i}\n`,
      `/usr/bin/fio --name=j${i} --filename=/dev/vda --direct=1 --ioengine=libaio --rw=${job.rw} --bs=${job.bs} --iodepth=${job.iodepth}`,
      ` --size=${span} --numjobs=2 --cpus_allowed=0-1 --cpus_allowed_policy=split --group_reporting`,
      ` --time_based --ramp_time=1 --runtime=${runtimeSeconds} --output-format=json`,
      `\necho ${END} ${i}`,
    ].join(''),
  );
  return `${lines.join('\n')}\n`;
}

interface FioSide {
  readonly iops?: number;
  readonly bw_bytes?: number;
}

/**
 * Reads job `index`'s result out of the guest console: fio's JSON between the markers (the serial
 * line turns "\n" into "\r\n"; kernel messages may precede the object). Throws when it is missing
 * or not fio's JSON.
 */
export function parseFioResult(consoleText: string, index: number): FioResult {
  const text = consoleText.replace(/\r/g, '');
  const begin = text.indexOf(`${BEGIN} ${index}\n`);
  const end = begin < 0 ? -1 : text.indexOf(`${END} ${index}\n`, begin);
  if (begin < 0 || end < 0) throw new Error(`fio job ${index}: no output between the markers`);
  const body = text.slice(begin, end);
  const open = body.indexOf('{');
  const close = body.lastIndexOf('}');
  if (open < 0 || close < open) throw new Error(`fio job ${index}: no JSON in its output: ${body.slice(0, 500)}`);
  const report = JSON.parse(body.slice(open, close + 1)) as { jobs?: { read?: FioSide; write?: FioSide }[] };
  const job = report.jobs?.[0];
  if (job?.read === undefined || job.write === undefined) throw new Error(`fio job ${index}: JSON without jobs[0].read/write`);
  return {
    iops: (job.read.iops ?? 0) + (job.write.iops ?? 0),
    bandwidth: (job.read.bw_bytes ?? 0) + (job.write.bw_bytes ?? 0),
  };
}
