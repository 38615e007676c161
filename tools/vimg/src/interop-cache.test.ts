import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCommandLine as parse } from './cli/parse.js';
import { qemuSkipReason, run, runOk, tempDir, vimg, vimgOk } from './testing/interop-support.js';

/**
 * Host cache modes (`-t`, `-T`) against qemu-img: the same refusals, the same bytes.
 */
const skip = qemuSkipReason();
const tmp = tempDir('vimg-cache-');
afterAll(() => tmp.remove());

describe('cache modes', () => {
  it('convert: -t is the target cache (default unsafe), -T the source cache (default writeback)', () => {
    expect(parse(['convert', 'a', 'b'])).toMatchObject({ cache: 'unsafe', sourceCache: 'writeback' });
    expect(parse(['convert', '-t', 'none', '-T', 'directsync', 'a', 'b'])).toMatchObject({ cache: 'none', sourceCache: 'directsync' });
  });

  it.skipIf(skip !== undefined)('bench -t none on a file without O_DIRECT fails as qemu-img does', async () => {
    const ours = await vimg('bench', '-f', 'raw', '-t', 'none', '-c', '1', '/dev/null');
    const theirs = run('qemu-img', ['bench', '-f', 'raw', '-t', 'none', '-c', '1', '/dev/null']);
    expect(ours.status).toBe(1);
    expect(theirs.status).toBe(1);
    expect(ours.stderr).toContain("Could not open '/dev/null'");
    expect(ours.stderr).toContain('does not support O_DIRECT');
    expect(theirs.stderr).toContain('does not support O_DIRECT');
  });

  it.skipIf(skip !== undefined)('bench -w in every -t mode writes what qemu-img bench writes', async () => {
    for (const mode of ['none', 'writethrough', 'directsync', 'unsafe', 'writeback']) {
      const ours = tmp.path(`ours-${mode}.raw`);
      const theirs = tmp.path(`theirs-${mode}.raw`);
      for (const path of [ours, theirs]) writeFileSync(path, new Uint8Array(1 << 20));
      const args = ['-f', 'raw', '-t', mode, '-w', '-c', '50', '-d', '8', '-s', '3000', '-S', '7000', '--pattern=85'];
      expect(await vimgOk('bench', ...args, ours)).toMatch(/Run completed in/);
      runOk('qemu-img', ['bench', ...args, theirs]);
      expect(Buffer.from(readFileSync(ours)).equals(readFileSync(theirs)), mode).toBe(true);
    }
  });

  it.skipIf(skip !== undefined)('convert -T none -t none qcow2 -> qcow2 equals the source (qemu-img compare)', async () => {
    const source = tmp.path('src.qcow2');
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', source, '4M']);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 100k 300k', '-c', 'write -P 9 3M 5k', source]);
    const target = tmp.path('dst.qcow2');
    await vimgOk('convert', '-f', 'qcow2', '-O', 'qcow2', '-T', 'none', '-t', 'none', source, target);
    runOk('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', source, target]);
    runOk('qemu-img', ['check', '-f', 'qcow2', target]);
  });
});

describe('preallocation: the host space qemu-img create takes (st_blocks, as du counts it)', () => {
  for (const [format, mode] of [
    ['raw', 'off'],
    ['raw', 'falloc'],
    ['raw', 'full'],
    ['qcow2', 'off'],
    ['qcow2', 'metadata'],
    ['qcow2', 'falloc'],
    ['qcow2', 'full'],
  ] as const) {
    it.skipIf(skip !== undefined)(`create -f ${format} -o preallocation=${mode}: allocated size within 4 KiB of qemu-img's`, async () => {
      const ours = tmp.path(`prealloc-ours-${format}-${mode}`);
      const theirs = tmp.path(`prealloc-theirs-${format}-${mode}`);
      await vimgOk('create', '-q', '-f', format, '-o', `preallocation=${mode}`, ours, '16M');
      runOk('qemu-img', ['create', '-q', '-f', format, '-o', `preallocation=${mode}`, theirs, '16M']);
      const a = statSync(ours);
      const b = statSync(theirs);
      expect(Math.abs(a.blocks - b.blocks) * 512).toBeLessThanOrEqual(4096);
      // With preallocation the file covers the whole image on both sides; without, qemu-img
      // leaves a qcow2 file short of its last cluster and vimg does not.
      if (mode !== 'off') expect(a.size).toBe(b.size);
    });
  }
});
