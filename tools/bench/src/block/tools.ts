import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built vimg executable (tools/vimg/dist/main.js); `pnpm bench` builds it first. */
export const VIMG_MAIN = fileURLToPath(new URL('../../../vimg/dist/main.js', import.meta.url));

export interface RunResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall-clock seconds of the whole process. */
  readonly seconds: number;
}

/** Runs a command to completion; throws when it cannot start or exits non-zero. */
export function runTool(command: string, args: readonly string[]): RunResult {
  const start = process.hrtime.bigint();
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.error !== undefined) throw r.error;
  const result = { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, seconds };
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr.trim()}`);
  return result;
}

/** `vimg ...` through node on the built dist. */
export function vimg(args: readonly string[]): RunResult {
  return runTool(process.execPath, [VIMG_MAIN, ...args]);
}

export function qemuImg(args: readonly string[]): RunResult {
  return runTool('qemu-img', args);
}

/** Why the suite cannot run, or undefined. */
export function missingTools(): string | undefined {
  if (!existsSync(VIMG_MAIN)) return `vimg is not built (${VIMG_MAIN} missing): run pnpm --filter @virtio-ts/vimg build`;
  const r = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) return 'qemu-img not found (apt-get install qemu-utils)';
  return undefined;
}

/** Seconds from the last line of `vimg bench` / `qemu-img bench`: `Run completed in X seconds.` */
export function benchSeconds(stdout: string): number {
  const match = /Run completed in (\d+(?:\.\d+)?) seconds\./.exec(stdout);
  if (match === null) throw new Error(`no "Run completed" line in: ${stdout}`);
  // A run shorter than the printed resolution counts as 0.5 ms.
  return Math.max(Number(match[1]), 0.0005);
}
