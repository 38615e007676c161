/**
 * Images written by vimg, judged by qemu-img: `qemu-img check` finds no errors and no leaks, and
 * `qemu-img compare` finds them equal to a reference raw image kept alongside.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeImageHost } from './image/node-image-host.js';
import { mixedBytes, prng, qemuSkipReason, run, runOk, tempDir, vimg, vimgOk, writeBytes } from './testing/interop-support.js';

const skip = qemuSkipReason();
const SIZE = 4 * 1024 * 1024;

/** Random writes, zero writes and discards through vimg's host, mirrored into `model`. */
async function randomOps(path: string, model: Uint8Array, seed: number, count: number, alwaysUnmap = false): Promise<void> {
  const host = new NodeImageHost();
  const chain = await host.open(path, { writable: true, format: 'qcow2', allowBacking: [] });
  const random = prng(seed);
  const disk = chain.top;
  try {
    for (let i = 0; i < count; i += 1) {
      const offset = Math.floor(random() * (model.length - 1));
      const length = Math.min(model.length - offset, 1 + Math.floor(random() * (random() < 0.5 ? 4096 : 200_000)));
      const kind = random();
      if (kind < 0.7) {
        const data = mixedBytes(length, seed * 1000 + i);
        await disk.write(offset, data);
        model.set(data, offset);
      } else if (kind < 0.85) {
        await disk.writeZeroes!(offset, length, { mayUnmap: alwaysUnmap || random() < 0.5 });
        model.fill(0, offset, offset + length);
      } else {
        // discard leaves the range unspecified: the model takes what the image now reads.
        await disk.discard!(offset, length);
        const now = new Uint8Array(length);
        await disk.read(offset, now);
        model.set(now, offset);
      }
      if (i % 10 === 9) await disk.flush();
    }
  } finally {
    await chain.close();
  }
}

describe.skipIf(skip !== undefined)('interop: vimg writes, qemu-img checks and compares', () => {
  const tmp = tempDir('vimg-write-');
  const at = tmp.path;
  afterAll(() => tmp.remove());

  function expectClean(image: string): void {
    const check = run('qemu-img', ['check', '--output=json', image], tmp.dir);
    expect(check.status, `qemu-img check ${image}: ${check.stdout}${check.stderr}`).toBe(0);
    const report = JSON.parse(check.stdout) as Record<string, unknown>;
    expect(report['corruptions'] ?? 0).toBe(0);
    expect(report['leaks'] ?? 0).toBe(0);
  }

  function expectEqual(image: string, reference: Uint8Array): void {
    writeBytes(at('reference.raw'), reference);
    const compare = run('qemu-img', ['compare', '-F', 'raw', image, 'reference.raw'], tmp.dir);
    expect(compare.stdout, compare.stderr).toBe('Images are identical.\n');
    expect(compare.status).toBe(0);
  }

  for (const options of ['cluster_size=64k', 'cluster_size=512,refcount_bits=1', 'compat=0.10,cluster_size=4k', 'extended_l2=on,cluster_size=64k', 'refcount_bits=64,lazy_refcounts=on', 'cluster_size=2M']) {
    it(`create -o ${options}, random writes, zeroes and discards`, async () => {
      const name = at(`w-${options.replace(/[^a-z0-9]+/gi, '_')}.qcow2`);
      await vimgOk('create', '-q', '-f', 'qcow2', '-o', options, name, String(SIZE));
      const model = new Uint8Array(SIZE);
      await randomOps(name, model, 11, 60);
      expectClean(name);
      expectEqual(name, model);
    });
  }

  it('snapshot -c / -a / -d', async () => {
    const name = at('snap.qcow2');
    await vimgOk('create', '-q', '-f', 'qcow2', name, String(SIZE));
    const model = new Uint8Array(SIZE);
    await randomOps(name, model, 21, 30);
    await vimgOk('snapshot', '-c', 'one', name);
    const atSnapshot = model.slice();
    await randomOps(name, model, 22, 30);
    expectClean(name);
    expectEqual(name, model);
    expect(runOk('qemu-img', ['snapshot', '-l', name])).toContain(' one ');
    await vimgOk('snapshot', '-a', 'one', name);
    expectClean(name);
    expectEqual(name, atSnapshot);
    await vimgOk('snapshot', '-d', 'one', name);
    expectClean(name);
    expect(runOk('qemu-img', ['snapshot', '-l', name])).toBe('');
    const missing = await vimg('snapshot', '-a', 'nope', name);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain("Could not find snapshot 'nope'");
  });

  it('resize +1M and back (--shrink)', async () => {
    const name = at('resize.qcow2');
    await vimgOk('create', '-q', '-f', 'qcow2', name, String(SIZE));
    const model = new Uint8Array(SIZE + (1 << 20));
    await randomOps(name, model.subarray(0, SIZE), 31, 20);
    expect(await vimgOk('resize', name, '+1M')).toBe('Image resized.\n');
    expectClean(name);
    expectEqual(name, model);
    expect(JSON.parse(runOk('qemu-img', ['info', '--output=json', name]))).toMatchObject({ 'virtual-size': SIZE + (1 << 20) });
    expect(await vimgOk('resize', '--shrink', name, '-1M')).toBe('Image resized.\n');
    expectClean(name);
    expectEqual(name, model.subarray(0, SIZE));
  });

  it('convert -c (zlib and zstd) and convert -O qcow2 -B backing', async () => {
    const source = mixedBytes(SIZE, 41);
    source.fill(0, 1 << 20, 2 << 20);
    writeBytes(at('src.raw'), source);
    for (const type of ['zlib', 'zstd']) {
      const out = at(`compressed-${type}.qcow2`);
      await vimgOk('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, at('src.raw'), out);
      expectClean(out);
      expectEqual(out, source);
      const check = JSON.parse(runOk('qemu-img', ['check', '--output=json', out])) as Record<string, number>;
      expect(check['compressed-clusters']).toBeGreaterThan(0);
    }
    // A backing file holding half the data: the target stores only what differs.
    const base = mixedBytes(SIZE, 41);
    base.fill(7, 0, 1 << 20);
    writeBytes(at('base.raw'), base);
    const top = at('top.qcow2');
    await vimgOk('convert', '-f', 'raw', '-O', 'qcow2', '-B', 'base.raw', '-F', 'raw', at('src.raw'), top);
    expectClean(top);
    expectEqual(top, source);
    const info = JSON.parse(runOk('qemu-img', ['info', '--output=json', top])) as Record<string, number>;
    expect(info['backing-filename']).toBe('base.raw');
    expect(info['actual-size']).toBeLessThan(SIZE / 2 + (1 << 20));
  });

  it('create -b -F, write through vimg, commit -d into the base', async () => {
    const base = at('cbase.qcow2');
    await vimgOk('create', '-q', '-f', 'qcow2', base, String(SIZE));
    const model = new Uint8Array(SIZE);
    await randomOps(base, model, 51, 20);
    const top = at('ctop.qcow2');
    expect(await vimgOk('create', '-f', 'qcow2', '-b', 'cbase.qcow2', '-F', 'qcow2', top)).toBe(
      `Formatting '${top}', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=${SIZE} backing_file=cbase.qcow2 backing_fmt=qcow2 lazy_refcounts=off refcount_bits=16\n`,
    );
    await randomOps(top, model, 52, 30);
    expectClean(top);
    expectEqual(top, model);
    expect(await vimgOk('commit', '-d', top)).toBe('Image committed.\n');
    expectClean(base);
    expectEqual(base, model);
    expectEqual(top, model);
  });

  it('a raw image written by vimg convert equals the source', async () => {
    const source = readFileSync(at('src.raw'));
    await vimgOk('convert', '-O', 'raw', at('compressed-zstd.qcow2'), at('back.raw'));
    expect(readFileSync(at('back.raw')).equals(source)).toBe(true);
  });
});
