/**
 * Crash injection (ARCHITECTURE.md, "Rules that keep it real"): a writer process doing random
 * writes and periodic flushes over @virtio-ts/block is killed with SIGKILL at random points.
 * Every image must then pass `qemu-img check` without corruption (leaks are allowed) and hold
 * every write acknowledged before the last completed flush.
 * Runs: 20 by default, VIMG_CRASH_RUNS to change (VIRTIO_TS_VIMG_CRASH_RUNS through turbo, whose
 * strict env mode passes only VIRTIO_TS_* variables).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crashPrng, parseCrashLog, writePattern, type CrashLogEntry } from './testing/crash-pattern.js';
import { qemuSkipReason, run, runOk, tempDir, vimgOk } from './testing/interop-support.js';

const skip = qemuSkipReason();
const RUNS = Number(process.env['VIMG_CRASH_RUNS'] ?? process.env['VIRTIO_TS_VIMG_CRASH_RUNS'] ?? 20);
const SIZE = 4 * 1024 * 1024;
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const WRITER = fileURLToPath(new URL('../dist/testing/crash-writer.js', import.meta.url));
const CONFIGS = ['cluster_size=64k', 'cluster_size=4k', 'cluster_size=512,refcount_bits=1', 'extended_l2=on,cluster_size=32k', 'compat=0.10', 'refcount_bits=64,cluster_size=16k'];

/** Starts the writer, waits for READY, kills it with SIGKILL after `delayMs`, returns its log. */
function runAndKill(image: string, seed: number, delayMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, image, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let armed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!armed && out.startsWith('READY\n')) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (signal === 'SIGKILL') resolve(out);
      else reject(new Error(`writer exited by itself (${String(_code)}): ${err}`));
    });
  });
}

/** The image content every completed flush guarantees, and the bytes later requests may have changed. */
function expectedState(entries: readonly CrashLogEntry[]): { model: Uint8Array; uncertain: Uint8Array; flushed: number } {
  const model = new Uint8Array(SIZE);
  const uncertain = new Uint8Array(SIZE);
  let flushed = 0;
  for (const entry of entries) if (entry.kind === 'F') flushed = Math.max(flushed, entry.seq);
  for (const entry of entries) {
    if (entry.kind === 'F') continue;
    if (entry.seq < flushed) {
      if (entry.kind === 'W') model.set(writePattern(entry.seq, entry.length), entry.offset);
      else model.fill(0, entry.offset, entry.offset + entry.length);
    } else {
      uncertain.fill(1, entry.offset, entry.offset + entry.length);
    }
  }
  return { model, uncertain, flushed };
}

describe.skipIf(skip !== undefined)(`crash injection: SIGKILL a writer ${RUNS} times`, () => {
  const tmp = tempDir('vimg-crash-');
  beforeAll(() => {
    // The writer runs on the built JavaScript (tsc -b also builds @virtio-ts/block).
    runOk(process.execPath, [fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url)), '-b', 'tsconfig.build.json'], PACKAGE_DIR);
  }, 120_000);
  afterAll(() => tmp.remove());

  it('every image passes qemu-img check without corruption and holds every flushed write', async () => {
    const random = crashPrng(Number(process.env['VIMG_CRASH_SEED'] ?? 20261125));
    let totalFlushed = 0;
    for (let runIndex = 0; runIndex < RUNS; runIndex += 1) {
      const options = CONFIGS[runIndex % CONFIGS.length]!;
      const image = tmp.path(`crash-${runIndex}.qcow2`);
      runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', options, image, String(SIZE)]);
      const seed = Math.floor(random() * 2 ** 31);
      const delay = 30 + Math.floor(random() * 500);
      const log = await runAndKill(image, seed, delay);
      const { model, uncertain, flushed } = expectedState(parseCrashLog(log));
      totalFlushed += flushed;
      const label = `run ${runIndex} (-o ${options}, seed ${seed}, kill after ${delay} ms, ${flushed} writes flushed)`;
      const check = run('qemu-img', ['check', '--output=json', image]);
      expect([0, 3], `${label}: qemu-img check exit ${check.status}\n${check.stdout}${check.stderr}`).toContain(check.status);
      expect((JSON.parse(check.stdout) as Record<string, number>)['corruptions'] ?? 0, label).toBe(0);
      runOk('qemu-img', ['convert', '-O', 'raw', image, `${image}.raw`]);
      const content = readFileSync(`${image}.raw`);
      let firstBad = -1;
      for (let i = 0; i < SIZE; i += 1) {
        if (uncertain[i] === 0 && content[i] !== model[i]) {
          firstBad = i;
          break;
        }
      }
      expect(firstBad, `${label}: byte ${firstBad} lost a flushed write`).toBe(-1);
      // vimg reads the crashed image exactly as qemu-img does (every few runs: it costs time).
      if (runIndex % 5 !== 4) continue;
      await vimgOk('convert', '-O', 'raw', image, `${image}.vimg.raw`);
      expect(readFileSync(`${image}.vimg.raw`).equals(content), `${label}: vimg reads differently`).toBe(true);
    }
    // The runs must have exercised something.
    expect(totalFlushed).toBeGreaterThan(RUNS);
  }, 300_000);
});
