import cliProgress from 'cli-progress';

/** Progress of a run: one bar over all workloads, redrawn on a TTY and silent elsewhere. */
export interface ProgressSink {
  update(workload: number, fraction: number, label: string): void;
  stop(): void;
}

/** A progress bar on stderr when it is a TTY (cli-progress), nothing otherwise. */
export function createProgress(workloads: number, enabled: boolean): ProgressSink {
  if (!enabled || workloads === 0 || process.stderr.isTTY !== true) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: 'vmm {bar} {percentage}% | {label}', stream: process.stderr, hideCursor: true, clearOnComplete: true, fps: 10 },
    cliProgress.Presets.shades_classic,
  );
  const fractions = new Array<number>(workloads).fill(0);
  bar.start(1000, 0, { label: '' });
  return {
    update(workload, fraction, label) {
      if (workload < 0 || workload >= workloads) return;
      fractions[workload] = Math.min(1, Math.max(0, fraction));
      const total = fractions.reduce((a, b) => a + b, 0) / workloads;
      bar.update(Math.round(total * 1000), { label });
    },
    stop() {
      bar.stop();
    },
  };
}
