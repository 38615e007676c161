/**
 * Interop with qemu-img / qemu-io (QEMU 7.2 here). Skips with a visible reason when qemu-img is
 * missing, and fails under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryFile } from '../memory-file.js';
import { NodeFile } from '../node/file.js';
import { openImage } from '../node/open-image.js';
import { qemuImg, qemuImgOk, qemuImgSkipReason, tempDir } from '../testing/node-qemu-img.js';
import { createQcow2, type Qcow2CreateOptions } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';

const skip = qemuImgSkipReason();
const tmp = tempDir('virtio-ts-qcow2-');
afterAll(() => tmp.remove());

function qemuIo(image: string, commands: string[]): void {
  const args = ['-f', 'qcow2'];
  for (const c of commands) args.push('-c', c);
  args.push(image);
  const r = spawnSync('qemu-io', args, { encoding: 'utf8' });
  if (r.status !== 0 || /error|fail/i.test(r.stdout)) throw new Error(`qemu-io failed: ${r.stdout} ${r.stderr}`);
}

function check(image: string): { corruptions: number; leaks: number } {
  const r = qemuImg(['check', '--output=json', image]);
  const parsed = JSON.parse(r.stdout) as { corruptions?: number; leaks?: number; 'check-errors'?: number };
  expect(parsed['check-errors'] ?? 0).toBe(0);
  return { corruptions: parsed.corruptions ?? 0, leaks: parsed.leaks ?? 0 };
}

async function readAll(path: string, options: { allowBacking?: boolean } = {}): Promise<Uint8Array> {
  const disk = await openImage(path, { readOnly: true, allowBacking: options.allowBacking ?? false });
  const out = new Uint8Array(disk.length);
  await disk.read(0, out);
  await disk.close();
  return out;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const qemuCreated: { name: string; opts: string }[] = [
  { name: '64k v3', opts: 'cluster_size=65536' },
  { name: '512 v3 refcount_bits=1', opts: 'cluster_size=512,refcount_bits=1' },
  { name: '4k v2 (compat=0.10)', opts: 'cluster_size=4096,compat=0.10' },
  { name: '16k extended_l2 refcount_bits=64', opts: 'cluster_size=16384,extended_l2=on,refcount_bits=64' },
  { name: '2M v3 lazy_refcounts', opts: 'cluster_size=2097152,lazy_refcounts=on' },
];

describe.skipIf(skip !== undefined)('interop: images written by qemu-io read equal to qemu-img convert -O raw', () => {
  for (const { name, opts } of qemuCreated) {
    it(name, async () => {
      const image = tmp.path(`q-${name.replace(/\W+/g, '_')}.qcow2`);
      const raw = `${image}.raw`;
      qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', opts, image, '8M']);
      qemuIo(image, [
        'write -P 0x11 0 100k',
        'write -P 0x22 1000k 3000',
        'write -z 40k 8k',
        'write -P 0x33 5M 1M',
        'discard 5M 512k',
        'write -z -u 7M 1M',
        'write -P 0x44 7340544 1024',
      ]);
      qemuImgOk(['convert', '-f', 'qcow2', '-O', 'raw', image, raw]);
      const expected = new Uint8Array(readFileSync(raw));
      const actual = await readAll(image);
      expect(firstDifference(actual, expected)).toBe(-1);
    });
  }

  it('blockStatus agrees with qemu-img map --output=json (data/zero per byte range, through the chain)', async () => {
    const base = tmp.path('map-base.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', base, '2M']);
    qemuIo(base, ['write -P 1 0 64k', 'write -P 2 1M 8k']);
    const top = tmp.path('map-top.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', 'map-base.qcow2', '-F', 'qcow2', top, '3M']);
    qemuIo(top, ['write -P 3 32k 16k', 'write -z 40k 4k', 'write -z 512k 64k', 'discard 1M 4k', 'write -P 4 2M 4k']);
    const map = JSON.parse(qemuImgOk(['map', '--output=json', top])) as { start: number; length: number; data: boolean; zero: boolean; depth: number }[];
    const segments = (list: { start: number; length: number; data: boolean; zero: boolean; depth: number }[]): string[] => {
      const merged: { start: number; length: number; key: string }[] = [];
      for (const m of list) {
        const key = `${m.data}/${m.zero}/${m.depth}`;
        const last = merged.at(-1);
        if (last !== undefined && last.key === key && last.start + last.length === m.start) last.length += m.length;
        else merged.push({ start: m.start, length: m.length, key });
      }
      return merged.map((m) => `${m.start}+${m.length}:${m.key}`);
    };
    const disk = await openImage(top, { readOnly: true, allowBacking: true });
    const ours: { start: number; length: number; data: boolean; zero: boolean; depth: number }[] = [];
    for (let at = 0; at < disk.length; ) {
      const status = await disk.blockStatus!(at, disk.length - at);
      ours.push({ start: at, length: status.length, data: status.data, zero: status.zero, depth: status.depth });
      at += status.length;
    }
    await disk.close();
    expect(segments(ours)).toEqual(segments(map));
  });

  it('a backing chain (qcow2 over qcow2 over raw, relative names) reads equal', async () => {
    const base = tmp.path('chain-base.raw');
    writeFileSync(base, pattern(4 << 20, 1));
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'chain-base.raw', '-F', 'raw', tmp.path('chain-mid.qcow2'), '6M']);
    qemuIo(tmp.path('chain-mid.qcow2'), ['write -P 0x55 1M 100k', 'write -z 2M 64k']);
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', 'chain-mid.qcow2', '-F', 'qcow2', tmp.path('chain-top.qcow2')]);
    qemuIo(tmp.path('chain-top.qcow2'), ['write -P 0x66 1050k 5000', 'write -P 0x77 4M 10k']);
    qemuImgOk(['convert', '-O', 'raw', tmp.path('chain-top.qcow2'), tmp.path('chain.raw')]);
    const expected = new Uint8Array(readFileSync(tmp.path('chain.raw')));
    const actual = await readAll(tmp.path('chain-top.qcow2'), { allowBacking: true });
    expect(firstDifference(actual, expected)).toBe(-1);
    await expect(openImage(tmp.path('chain-top.qcow2'), { readOnly: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

const ourConfigs: (Partial<Qcow2CreateOptions> & { name: string; grows?: boolean })[] = [
  { name: '64k v3' },
  { name: '512 v3 refcount_bits=1', clusterSize: 512, refcountBits: 1 },
  { name: '512 v3 refcount_bits=64 (the refcount table grows)', clusterSize: 512, refcountBits: 64, grows: true },
  { name: '4k v2', clusterSize: 4096, compat: '0.10' },
  { name: '16k extended_l2 refcount_bits=64', clusterSize: 16384, extendedL2: true, refcountBits: 64 },
  { name: '8k refcount_bits=2 lazy', clusterSize: 8192, refcountBits: 2, lazyRefcounts: true },
  { name: '1k refcount_bits=32', clusterSize: 1024, refcountBits: 32 },
  { name: '64k refcount_bits=4', refcountBits: 4 },
  { name: '32k refcount_bits=8', clusterSize: 32768, refcountBits: 8 },
];

describe.skipIf(skip !== undefined)('interop: images we write pass qemu-img check and compare', () => {
  for (const config of ourConfigs) {
    it(config.name, async () => {
      const size = 6 << 20;
      const image = tmp.path(`ours-${config.name.replace(/\W+/g, '_')}.qcow2`);
      const file = await NodeFile.open(image, { create: true });
      await createQcow2(file, { ...config, size });
      await file.close();
      const disk = await Qcow2Driver.open(await NodeFile.open(image));
      const model = new Uint8Array(size);
      const writes: Promise<void>[] = [];
      // 4 MiB of data in 37 KiB pieces, concurrently, plus overlapping small writes.
      for (let i = 0, at = 0; at < 4 << 20; i++, at += 37 * 1024) {
        const data = pattern(Math.min(37 * 1024, size - at), i);
        model.set(data, at);
        writes.push(disk.write(at, data));
      }
      await Promise.all(writes);
      const small = pattern(777, 99);
      await Promise.all([disk.write(12345, small), disk.writeZeroes(2 << 20, 300 * 1024), disk.discard(3 << 20, 1 << 20)]);
      model.set(small, 12345);
      model.fill(0, 2 << 20, (2 << 20) + 300 * 1024);
      const cs = config.clusterSize ?? 65536;
      model.fill(0, Math.ceil((3 << 20) / cs) * cs, Math.floor((4 << 20) / cs) * cs);
      await disk.flush();
      await disk.close();
      if (config.grows === true) {
        // refcount_table_offset moved away from cluster 1
        expect(new DataView(readFileSync(image).buffer).getUint32(52)).not.toBe(config.clusterSize);
      }
      writeFileSync(`${image}.raw`, model);
      const result = check(image);
      if (result.corruptions + result.leaks > 0) console.log(qemuImg(['check', image]).stdout.slice(0, 2000));
      expect(result.corruptions).toBe(0);
      expect(result.leaks).toBe(0);
      const compare = qemuImg(['compare', '-f', 'qcow2', '-F', 'raw', image, `${image}.raw`]);
      expect(compare.stdout + compare.stderr).toContain('Images are identical');
      expect(compare.status).toBe(0);
    });
  }

  it('an overlay we create over a qemu-img base with a relative backing name', async () => {
    const base = tmp.path('ours-base.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', base, '4M']);
    qemuIo(base, ['write -P 0x5a 0 4M']);
    const top = tmp.path('ours-top.qcow2');
    const file = await NodeFile.open(top, { create: true });
    await createQcow2(file, { size: 4 << 20, backingFile: 'ours-base.qcow2', backingFormat: 'qcow2', clusterSize: 4096 });
    await file.close();
    const disk = await openImage(top, { allowBacking: true });
    await disk.write(1000, new Uint8Array(3000).fill(1)); // partial clusters: copy-on-write from the base
    await disk.writeZeroes!(65536, 65536);
    await disk.close();
    const model = new Uint8Array(4 << 20).fill(0x5a);
    model.fill(1, 1000, 4000);
    model.fill(0, 65536, 131072);
    writeFileSync(`${top}.raw`, model);
    expect(check(top)).toEqual({ corruptions: 0, leaks: 0 });
    const compare = qemuImg(['compare', '-F', 'raw', top, `${top}.raw`]);
    expect(compare.stdout + compare.stderr).toContain('Images are identical');
  });

  it('preallocation=metadata and full images pass check and read as zeroes', async () => {
    for (const preallocation of ['metadata', 'full'] as const) {
      const image = tmp.path(`prealloc-${preallocation}.qcow2`);
      const file = await NodeFile.open(image, { create: true });
      await createQcow2(file, { size: 3 << 20, clusterSize: 4096, preallocation });
      await file.close();
      expect(check(image)).toEqual({ corruptions: 0, leaks: 0 });
      const map = JSON.parse(qemuImgOk(['map', '--output=json', image])) as { data: boolean }[];
      expect(map.every((m) => m.data)).toBe(true);
      const bytes = await readAll(image);
      expect(bytes.every((b) => b === 0)).toBe(true);
    }
  });

  it('resize grows (L1 relocated) and shrinks an unallocated tail; qemu-img agrees on the size', async () => {
    const image = tmp.path('resize.qcow2');
    const file = await NodeFile.open(image, { create: true });
    await createQcow2(file, { size: 1 << 20, clusterSize: 512 });
    await file.close();
    const disk = await Qcow2Driver.open(await NodeFile.open(image));
    await disk.write(0, new Uint8Array(1000).fill(9));
    await disk.resize(64 << 20);
    await disk.write((64 << 20) - 512, new Uint8Array(512).fill(8));
    await expect(disk.resize(32 << 20)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await disk.discard((64 << 20) - 512, 512);
    await disk.resize(32 << 20);
    await expect(disk.resize(512)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await disk.close();
    const info = JSON.parse(qemuImgOk(['info', '--output=json', image])) as { 'virtual-size': number };
    expect(info['virtual-size']).toBe(32 << 20);
    expect(check(image)).toEqual({ corruptions: 0, leaks: 0 });
  });

  it('crash safety: the image after any host write passes qemu-img check (leaks allowed)', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 4 << 20, clusterSize: 512, refcountBits: 64 });
    const states: Uint8Array[] = [];
    const write = file.write.bind(file);
    let writes = 0;
    file.write = async (offset, buffer) => {
      await write(offset, buffer);
      // every 7th host write (copying the image after each one would dominate the test)
      if (writes++ % 7 === 0) states.push(file.snapshot());
    };
    const disk = await Qcow2Driver.open(file);
    // Enough allocation to create refcount blocks and grow the refcount table (2 MiB coverage).
    await Promise.all([disk.write(0, new Uint8Array(5 << 19).fill(1)), disk.write(3 << 20, new Uint8Array(1000).fill(2))]);
    await disk.writeZeroes(0, 1 << 20, { mayUnmap: true });
    await disk.write(100, new Uint8Array(10).fill(3));
    await disk.close();
    const step = Math.max(1, Math.floor(states.length / 12));
    for (let i = 0; i < states.length; i += step) {
      const path = tmp.path(`crash-${i}.qcow2`);
      writeFileSync(path, states[i]!);
      expect({ state: i, ...check(path) }).toMatchObject({ state: i, corruptions: 0 });
    }
  });
});
