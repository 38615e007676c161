import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Test support for interop with qemu-img (Node only). Not exported from the package entry points.
 */

/** True when `qemu-img` runs on this machine. */
export function hasQemuImg(): boolean {
  const r = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Decides how an interop suite runs without its peer: skip with a visible reason, except under
 * CI=true where a missing peer must fail. Returns the reason to skip, or undefined to run.
 */
export function qemuImgSkipReason(): string | undefined {
  if (hasQemuImg()) return undefined;
  if (process.env.CI === 'true') return undefined; // run, and fail on the missing peer
  const reason = 'qemu-img not found: interop tests skipped (they fail under CI=true)';
  console.warn(reason);
  return reason;
}

export interface QemuImgResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs qemu-img; throws when it cannot start. Does not throw on a non-zero exit status. */
export function qemuImg(args: readonly string[]): QemuImgResult {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.error !== undefined) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs qemu-img and throws with its stderr unless it exits 0. */
export function qemuImgOk(args: readonly string[]): string {
  const r = qemuImg(args);
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh temporary directory and its removal. */
export function tempDir(prefix: string): { dir: string; path(name: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
