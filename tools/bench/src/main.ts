#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatJsonLines, formatTable } from './report.js';
import { suites } from './suite.js';

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function cpuMilliseconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

const program = new Command()
  .name('bench')
  .description('Side-by-side benchmarks of virtio-ts')
  .argument('<suites...>', `suites to run: ${Object.keys(suites).join(', ')}`)
  .option('--json', 'print one JSON object per line: row, unit, ours, peer, ratio')
  .option('-r, --repeats <n>', 'repeats per measurement (sides alternate; the median is reported; default 7, linux 2)', positiveInteger)
  .option('--runtime <seconds>', 'seconds per timed measurement (linux: each fio job, default 5)', positiveNumber)
  .option('-s, --scale <x>', 'work per measurement (1 = default, 0.1 = quick)', positiveNumber, 1)
  .addOption(new Option('--clock <clock>', 'clock of single-thread rows: wall time, or this process\'s CPU time').choices(['wall', 'cpu']).default('wall'))
  .action(async (names: string[], options: { json?: boolean; repeats?: number; runtime?: number; scale: number; clock: 'wall' | 'cpu' }) => {
    for (const name of names) {
      const load = suites[name];
      if (load === undefined) {
        process.stderr.write(`bench: unknown suite '${name}' (known: ${Object.keys(suites).join(', ')}) [UNKNOWN_SUITE]\n`);
        process.exitCode = 2;
        return;
      }
    }
    for (const name of names) {
      const { suite } = await suites[name]!();
      const log = (message: string): void => void process.stderr.write(`[${suite.name}] ${message}\n`);
      const now = options.clock === 'cpu' ? cpuMilliseconds : () => performance.now();
      const repeats = options.repeats ?? suite.defaultRepeats ?? 7;
      const rows = await suite.run({ repeats, scale: options.scale, log, now, clock: options.clock, runtimeSeconds: options.runtime });
      if (options.json === true) process.stdout.write(`${formatJsonLines(rows)}\n`);
      else process.stdout.write(`\n${suite.description}\n${formatTable(rows, suite.peerTitle)}\n`);
    }
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  const e = error as { message?: string; code?: string };
  process.stderr.write(`bench: ${e.message ?? String(error)}${e.code !== undefined ? ` [${e.code}]` : ''}\n`);
  process.exitCode = 1;
});
