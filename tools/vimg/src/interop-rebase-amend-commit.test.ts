/**
 * rebase, amend and commit written by vimg, judged by qemu-img 7.2: `qemu-img check` finds no
 * errors and no leaks, `qemu-img info` shows the new backing file/format/compat/lazy refcounts,
 * and `qemu-img compare` finds the result equal to a reference made by qemu-img doing the same.
 */
import { copyFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { mixedBytes, qemuSkipReason, run, runOk, tempDir, vimg, vimgOk, writeBytes } from './testing/interop-support.js';

const skip = qemuSkipReason();
const SIZE = 2 * 1024 * 1024;

describe.skipIf(skip !== undefined)('interop: vimg rebase / amend / commit against qemu-img', () => {
  const tmp = tempDir('vimg-rac-');
  const at = tmp.path;
  afterAll(() => tmp.remove());
  const q = (...args: string[]): string => runOk('qemu-img', args, tmp.dir);
  const io = (image: string, ...commands: string[]): void => {
    runOk('qemu-io', [...commands.flatMap((c) => ['-c', c]), image], tmp.dir);
  };

  function expectClean(image: string): void {
    const check = run('qemu-img', ['check', '--output=json', image], tmp.dir);
    expect(check.status, `qemu-img check ${image}: ${check.stdout}${check.stderr}`).toBe(0);
    const report = JSON.parse(check.stdout) as Record<string, unknown>;
    expect([report['corruptions'] ?? 0, report['leaks'] ?? 0, report['check-errors'] ?? 0]).toEqual([0, 0, 0]);
  }

  function info(image: string): Record<string, unknown> {
    return JSON.parse(q('info', '--output=json', image)) as Record<string, unknown>;
  }

  function specific(image: string): Record<string, unknown> {
    return ((info(image)['format-specific'] as Record<string, unknown>)['data'] ?? {}) as Record<string, unknown>;
  }

  function expectIdentical(a: string, b: string): void {
    const compare = run('qemu-img', ['compare', a, b], tmp.dir);
    expect(compare.stdout, compare.stderr).toBe('Images are identical.\n');
  }

  it('rebase -u -b NEW -F fmt rewrites only the header', async () => {
    writeBytes(at('u-base.raw'), mixedBytes(SIZE, 1));
    writeBytes(at('u-new.raw'), mixedBytes(SIZE, 2));
    q('create', '-q', '-f', 'qcow2', '-b', 'u-base.raw', '-F', 'raw', 'u-top.qcow2');
    io('u-top.qcow2', 'write -P 0x11 64k 128k');
    copyFileSync(at('u-top.qcow2'), at('u-ref.qcow2'));
    await vimgOk('rebase', '-u', '-b', 'u-new.raw', '-F', 'raw', at('u-top.qcow2'));
    q('rebase', '-u', '-b', 'u-new.raw', '-F', 'raw', 'u-ref.qcow2');
    expectClean('u-top.qcow2');
    const i = info('u-top.qcow2');
    expect([i['backing-filename'], i['backing-filename-format']]).toEqual(['u-new.raw', 'raw']);
    expectIdentical('u-top.qcow2', 'u-ref.qcow2');
    // -b "" removes the backing file.
    await vimgOk('rebase', '-u', '-b', '', at('u-top.qcow2'));
    expect(info('u-top.qcow2')['backing-filename']).toBeUndefined();
    expectClean('u-top.qcow2');
  });

  it('safe rebase onto a new backing file equals qemu-img rebase', async () => {
    writeBytes(at('s-old.raw'), mixedBytes(SIZE, 3));
    const other = mixedBytes(SIZE, 3);
    other.set(mixedBytes(300_000, 4), 500_000);
    writeBytes(at('s-new.raw'), other);
    q('create', '-q', '-f', 'qcow2', '-b', 's-old.raw', '-F', 'raw', 's-top.qcow2');
    io('s-top.qcow2', 'write -P 0x22 0 64k', 'write -z 1M 64k');
    copyFileSync(at('s-top.qcow2'), at('s-ref.qcow2'));
    await vimgOk('rebase', '-b', 's-new.raw', '-F', 'raw', at('s-top.qcow2'));
    q('rebase', '-b', 's-new.raw', '-F', 'raw', 's-ref.qcow2');
    expectClean('s-top.qcow2');
    expect(info('s-top.qcow2')['backing-filename']).toBe('s-new.raw');
    expectIdentical('s-top.qcow2', 's-ref.qcow2');
    // And it still reads like the old chain did.
    q('create', '-q', '-f', 'qcow2', '-b', 's-old.raw', '-F', 'raw', 's-orig.qcow2');
    io('s-orig.qcow2', 'write -P 0x22 0 64k', 'write -z 1M 64k');
    expectIdentical('s-top.qcow2', 's-orig.qcow2');
  });

  it('amend -o compat=1.1,lazy_refcounts=on and back to compat=0.10', async () => {
    q('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', 'a.qcow2', String(SIZE));
    io('a.qcow2', 'write -P 0x33 0 100k', 'write -P 0x44 1M 64k');
    copyFileSync(at('a.qcow2'), at('a-orig.qcow2'));
    await vimgOk('amend', '-o', 'compat=1.1,lazy_refcounts=on', at('a.qcow2'));
    expect([specific('a.qcow2')['compat'], specific('a.qcow2')['lazy-refcounts']]).toEqual(['1.1', true]);
    expectClean('a.qcow2');
    expectIdentical('a.qcow2', 'a-orig.qcow2');
    io('a.qcow2', 'write -P 0x55 512k 64k');
    io('a-orig.qcow2', 'write -P 0x55 512k 64k');
    const refused = await vimg('amend', '-o', 'compat=0.10', at('a.qcow2'));
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/lazy refcounts/i);
    await vimgOk('amend', '-o', 'lazy_refcounts=off,compat=0.10', at('a.qcow2'));
    expect(specific('a.qcow2')['compat']).toBe('0.10');
    expectClean('a.qcow2');
    expectIdentical('a.qcow2', 'a-orig.qcow2');
    // A v3-only feature in use refuses the downgrade, leaving the image as it was.
    q('create', '-q', '-f', 'qcow2', 'z.qcow2', String(SIZE));
    io('z.qcow2', 'write -P 1 0 64k', 'write -z 0 64k');
    const zero = await vimg('amend', '-o', 'compat=0.10', at('z.qcow2'));
    expect(zero.status).not.toBe(0);
    expect(specific('z.qcow2')['compat']).toBe('1.1');
    expectClean('z.qcow2');
  });

  it('commit (without -d) writes into the base and empties the image, as qemu-img commit does', async () => {
    for (const name of ['c', 'c-ref']) {
      q('create', '-q', '-f', 'qcow2', `${name}-base.qcow2`, String(SIZE));
      io(`${name}-base.qcow2`, 'write -P 0x66 0 1M');
      q('create', '-q', '-f', 'qcow2', '-b', `${name}-base.qcow2`, '-F', 'qcow2', `${name}-top.qcow2`);
      io(`${name}-top.qcow2`, 'write -P 0x77 64k 200k', 'write -z 512k 64k', 'write -P 0x78 1536k 100k');
    }
    const result = await vimgOk('commit', at('c-top.qcow2'));
    expect(result).toBe('Image committed.\n');
    q('commit', '-q', 'c-ref-top.qcow2');
    expectClean('c-top.qcow2');
    expectClean('c-base.qcow2');
    expectIdentical('c-base.qcow2', 'c-ref-base.qcow2');
    expectIdentical('c-top.qcow2', 'c-ref-top.qcow2');
    const map = JSON.parse(q('map', '--output=json', 'c-top.qcow2')) as { depth: number; present: boolean }[];
    expect(map.filter((e) => e.depth === 0 && e.present)).toEqual([]);
    expect(info('c-top.qcow2')['backing-filename']).toBe('c-base.qcow2');
  });

  it('commit -b BASE through an intermediate layer (implies -d) equals qemu-img commit -b', async () => {
    for (const name of ['m', 'm-ref']) {
      q('create', '-q', '-f', 'qcow2', `${name}-base.qcow2`, String(SIZE));
      io(`${name}-base.qcow2`, 'write -P 0x10 0 2M');
      q('create', '-q', '-f', 'qcow2', '-b', `${name}-base.qcow2`, '-F', 'qcow2', `${name}-mid.qcow2`);
      io(`${name}-mid.qcow2`, 'write -P 0x20 0 512k');
      q('create', '-q', '-f', 'qcow2', '-b', `${name}-mid.qcow2`, '-F', 'qcow2', `${name}-top.qcow2`);
      io(`${name}-top.qcow2`, 'write -P 0x30 256k 512k');
    }
    await vimgOk('commit', '-q', '-b', at('m-base.qcow2'), at('m-top.qcow2'));
    q('commit', '-q', '-b', 'm-ref-base.qcow2', 'm-ref-top.qcow2');
    for (const layer of ['base', 'mid', 'top']) {
      expectClean(`m-${layer}.qcow2`);
      expectIdentical(`m-${layer}.qcow2`, `m-ref-${layer}.qcow2`);
    }
  });
});
