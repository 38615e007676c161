import type { Row } from './report.js';

/** Settings every suite receives from the command line. */
export interface SuiteOptions {
  /** Times each measurement is repeated (sides alternate); the median is reported. */
  readonly repeats: number;
  /** Scale of each measurement: 1 is the default, 0.1 a quick run. */
  readonly scale: number;
  /**
   * The clock of single-thread rows, in milliseconds: wall time (`performance.now`) by default,
   * or this process's CPU time with `--clock cpu` (steadier on a shared machine: time spent
   * descheduled is not counted). Worker rows always use wall time.
   */
  readonly now: () => number;
  /** Name of that clock, for the report. */
  readonly clock: 'wall' | 'cpu';
  /** Progress lines go here (stderr), never to stdout. */
  readonly log: (message: string) => void;
  /** `--runtime`: seconds per timed measurement, for suites that run for a fixed time (linux: each fio job). */
  readonly runtimeSeconds?: number;
}

/** A benchmark suite: `pnpm bench <name>`. */
export interface Suite {
  readonly name: string;
  readonly description: string;
  /** Title of the peer column (e.g. `baseline`, `qemu-img`). */
  readonly peerTitle: string;
  /** Repeats when `--repeats` is not given (default 7); suites whose measurement takes minutes use fewer. */
  readonly defaultRepeats?: number;
  run(options: SuiteOptions): Promise<Row[]>;
}

/**
 * The suites, loaded on demand. To add one, add one line here pointing at a module that
 * exports `suite: Suite` (e.g. `block: () => import('./block/index.js')`).
 */
export const suites: Record<string, () => Promise<{ suite: Suite }>> = {
  ring: () => import('./ring/index.js'),
  block: () => import('./block/index.js'),
  vmm: () => import('./vmm/index.js'),
  linux: () => import('./linux/index.js'),
};
