import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeImageHost } from '../image/node-image-host.js';
import { runVimg } from '../run.js';

/** What a vimg or qemu-img run printed. */
export interface ToolResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs vimg in-process (the same code path as the executable) with captured output. */
export async function vimg(...argv: string[]): Promise<ToolResult> {
  let stdout = '';
  let stderr = '';
  const status = await runVimg(argv, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) }, new NodeImageHost());
  return { status, stdout, stderr };
}

/** Runs vimg and throws with its stderr unless it exits 0. */
export async function vimgOk(...argv: string[]): Promise<string> {
  const result = await vimg(...argv);
  if (result.status !== 0) throw new Error(`vimg ${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

export function run(command: string, args: readonly string[], cwd?: string): ToolResult {
  const r = spawnSync(command, args, { encoding: 'utf8', ...(cwd !== undefined ? { cwd } : {}), maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function runOk(command: string, args: readonly string[], cwd?: string): string {
  const r = run(command, args, cwd);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** True when qemu-img and qemu-io run here. */
export function hasQemu(): boolean {
  const img = spawnSync('qemu-img', ['--version']);
  const io = spawnSync('qemu-io', ['--version']);
  return img.status === 0 && io.status === 0;
}

/**
 * How an interop suite runs without qemu-img: skipped with a visible reason, except under
 * CI=true where it runs and fails on the missing peer.
 */
export function qemuSkipReason(): string | undefined {
  if (hasQemu()) return undefined;
  if (process.env['CI'] === 'true') return undefined;
  const reason = 'qemu-img/qemu-io not found: vimg interop tests skipped (they fail under CI=true)';
  console.warn(reason);
  return reason;
}

/** A temporary directory removed by `remove()`. */
export function tempDir(prefix: string): { dir: string; path(name: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A small deterministic PRNG (mulberry32), so failures reproduce from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes that are half random, half compressible text (so compressed clusters are exercised). */
export function mixedBytes(length: number, seed: number): Uint8Array {
  const random = prng(seed);
  const out = new Uint8Array(length);
  const text = new TextEncoder().encode(`virtio-ts vimg interop ${seed} `);
  for (let i = 0; i < length; i += 1) out[i] = Math.floor(i / 4096) % 2 === 0 ? text[i % text.length]! : Math.floor(random() * 256);
  return out;
}

export function writeBytes(path: string, bytes: Uint8Array): void {
  writeFileSync(path, bytes);
}

export function filesEqual(a: string, b: string): boolean {
  return readFileSync(a).equals(readFileSync(b));
}
