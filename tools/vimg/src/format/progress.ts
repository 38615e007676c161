/**
 * qemu-img's progress line (util/qemu-progress.c, progress_simple_print): `"    (%3.2f/100%)\r"`
 * on each update of at least 1%, and a newline at the end; written also when not a TTY, because
 * other tools (oVirt, KubeVirt CDI) parse it.
 */
export class ProgressPrinter {
  private last = -1;

  constructor(private readonly write: (text: string) => void) {}

  /** Prints the 0% line, as qemu_progress_init + qemu_progress_print(0, 100) do. */
  start(): void {
    this.print(0);
  }

  /**
   * Reports `done` out of `total`. As qemu_progress_print with min_skip 1: prints when the value
   * moved by more than 1% since the last line, or is exactly 0 or 100. qemu keeps a C float.
   */
  update(done: number, total: number): void {
    const percent = Math.fround(total <= 0 ? 100 : Math.min(100, (done * 100) / total));
    if (percent > this.last + 1 || percent < this.last - 1 || percent === 0 || percent === 100) this.print(percent);
  }

  /** Prints 100% and the final newline (qemu_progress_end). */
  end(): void {
    this.print(100);
    this.write('\n');
  }

  private print(percent: number): void {
    this.last = percent;
    this.write(formatProgress(percent));
  }
}

/** One progress line, C's `"    (%3.2f/100%)\r"`. */
export function formatProgress(percent: number): string {
  return `    (${percent.toFixed(2).padStart(3)}/100%)\r`;
}
