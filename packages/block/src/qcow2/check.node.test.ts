import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BlockError } from '../errors.js';
import { MemoryFile } from '../memory-file.js';
import { qemuImg, qemuImgOk, qemuImgSkipReason, tempDir } from '../testing/node-qemu-img.js';
import { checkExitCode, checkQcow2, qemuImgCheckJson, type Qcow2RepairMode } from './check.js';

/**
 * `checkQcow2` against `qemu-img check` on images qemu-img made and we damaged in known ways:
 * the same JSON report before repair, after `-r leaks` and after `-r all`, and qemu-img's own
 * check of the file we repaired gives what its own repair gives.
 */
const skip = qemuImgSkipReason();
const CS = 65536;

function qemuIo(path: string, command: string): void {
  const r = spawnSync('qemu-io', ['-f', 'qcow2', '-c', command, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-io ${command}: ${r.stderr}`);
}

/** qemu-img check --output=json, without the filename, and its exit status. */
/** qemu-img check's findings on stderr, without its own "qemu-img:"/"qcow2:" lines. */
function findings(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !l.startsWith('qemu-img:') && !l.startsWith('qcow2:'));
}

function theirs(path: string, repair?: Qcow2RepairMode, messages?: string[]): { json: Record<string, unknown> | null; status: number } {
  const r = qemuImg(['check', '--output=json', ...(repair === undefined ? [] : ['-r', repair]), path]);
  messages?.push(...findings(r.stderr));
  // "Check failed": no report, exit status 1.
  if (r.stdout.trim() === '') return { json: null, status: r.status };
  const json = JSON.parse(r.stdout) as Record<string, unknown>;
  delete json.filename;
  return { json, status: r.status };
}

/** Our check on the file's bytes (written back after a repair). */
async function ours(path: string, repair?: Qcow2RepairMode): Promise<{ json: Record<string, unknown> | null; status: number; messages: string[] }> {
  const file = new MemoryFile({ data: new Uint8Array(readFileSync(path)) });
  let result;
  try {
    result = await checkQcow2(file, repair === undefined ? {} : { repair });
  } catch (error) {
    if (!BlockError.isInstance(error)) throw error;
    writeFileSync(path, file.snapshot());
    return { json: null, status: 1, messages: [error.message] };
  }
  if (repair !== undefined) writeFileSync(path, file.snapshot());
  return { json: qemuImgCheckJson(result), status: checkExitCode(result), messages: result.messages };
}

interface Layout {
  reftable: number;
  refblock: number;
  l1: number;
  l2: number;
  clusters: number;
}

function layout(bytes: Uint8Array): Layout {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reftable = Number(v.getBigUint64(48));
  const l1 = Number(v.getBigUint64(40));
  return {
    reftable,
    refblock: Number(v.getBigUint64(reftable)),
    l1,
    l2: Number(v.getBigUint64(l1) & 0x00fffffffffffe00n),
    clusters: Math.ceil(bytes.length / CS),
  };
}

type Damage = (bytes: Uint8Array, at: Layout) => Uint8Array;

const setU16 = (b: Uint8Array, off: number, value: number) => new DataView(b.buffer, b.byteOffset).setUint16(off, value);
const setU64 = (b: Uint8Array, off: number, value: bigint) => new DataView(b.buffer, b.byteOffset).setBigUint64(off, value);
const extend = (b: Uint8Array, by: number) => {
  const out = new Uint8Array(b.length + by);
  out.set(b);
  return out;
};
const COPIED = 1n << 63n;

/** `qemuAllFails`: qemu-img -r all gives up (it marks the image corrupt mid-repair); we must repair it. */
const scenarios: [name: string, damage: Damage, qemuAllFails?: boolean][] = [
  ['a leaked cluster (refcount 1, no reference)', (b, at) => {
    const out = extend(b, CS);
    setU16(out, at.refblock + 2 * at.clusters, 1);
    return out;
  }],
  ['a refcount too high on a data cluster (leak + OFLAG_COPIED)', (b, at) => (setU16(b, at.refblock + 2 * (at.clusters - 4), 3), b)],
  ['a data cluster with refcount 0 (rebuild)', (b, at) => (setU16(b, at.refblock + 2 * (at.clusters - 3), 0), b)],
  ['an L2 table with refcount 0', (b, at) => (setU16(b, at.refblock + 2 * (at.l2 / CS), 0), b)],
  ['an L2 entry past the end of the file', (b, at) => (setU64(b, at.l2 + 8 * 4, COPIED | 0x1000000n), b)],
  ['an unaligned L2 entry', (b, at) => {
    const out = extend(b, CS);
    setU64(out, at.l2 + 8 * 5, COPIED | BigInt(at.clusters * CS + 0x200));
    return out;
  }],
  ['OFLAG_COPIED missing on a data cluster', (b, at) => {
    const v = new DataView(b.buffer, b.byteOffset);
    setU64(b, at.l2 + 8, v.getBigUint64(at.l2 + 8) & ~COPIED);
    return b;
  }],
  ['OFLAG_COPIED missing on the L1 entry', (b, at) => {
    const v = new DataView(b.buffer, b.byteOffset);
    setU64(b, at.l1, v.getBigUint64(at.l1) & ~COPIED);
    return b;
  }],
  ['a data cluster overlapping the L1 table (metadata overlap)', (b, at) => (setU64(b, at.l2 + 8 * 6, COPIED | BigInt(at.l1)), b)],
  ['a data cluster shared by two L2 entries', (b, at) => {
    const v = new DataView(b.buffer, b.byteOffset);
    setU64(b, at.l2 + 8 * 7, v.getBigUint64(at.l2));
    return b;
  }],
  ['an unaligned refcount block entry', (b, at) => (setU64(b, at.reftable, BigInt(at.refblock + 512)), b), true],
];

describe.skipIf(skip !== undefined)('qcow2 check and repair vs qemu-img check', () => {
  const tmp = tempDir('virtio-ts-check-');
  let base: string;
  beforeAll(() => {
    base = tmp.path('base.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', base, '4M']);
    qemuIo(base, 'write -P 1 0 256k');
  });
  afterAll(() => tmp.remove());

  it('a clean image: the same report, exit status 0', async () => {
    expect(await ours(base)).toMatchObject(theirs(base));
  });

  for (const [name, damage, qemuAllFails] of scenarios) {
    it(`H20: ${name}: the same report before and after -r leaks and -r all`, async () => {
      const bytes = new Uint8Array(readFileSync(base));
      const damaged = tmp.path(`${name.replace(/\W+/g, '-')}.qcow2`);
      writeFileSync(damaged, damage(bytes, layout(bytes)));
      const before = await ours(damaged);
      expect({ json: before.json, status: before.status }).toEqual(theirs(damaged));
      // The same findings, line for line, as qemu-img prints on stderr.
      expect(before.messages).toEqual(findings(qemuImg(['check', damaged]).stderr));
      for (const mode of ['leaks', 'all'] as const) {
        const a = `${damaged}.${mode}.a`;
        const b = `${damaged}.${mode}.b`;
        copyFileSync(damaged, a);
        copyFileSync(damaged, b);
        const qemuMessages: string[] = [];
        const repairedByQemu = theirs(a, mode, qemuMessages);
        const repairedByUs = await ours(b, mode);
        if (qemuAllFails === true && mode === 'all') {
          expect(repairedByQemu.json).toBeNull();
          expect(repairedByUs).toMatchObject({ status: 0, json: { 'check-errors': 0 } });
          expect(repairedByUs.json).not.toHaveProperty('corruptions');
          expect(theirs(b)).toMatchObject({ status: 0 });
          continue;
        }
        expect({ json: repairedByUs.json, status: repairedByUs.status }).toEqual(repairedByQemu);
        if (repairedByUs.json !== null) expect(repairedByUs.messages).toEqual(qemuMessages);
        // qemu-img finds in our repaired file what it finds in its own.
        expect(theirs(b)).toEqual(theirs(a));
      }
    });
  }

  const snapshotScenarios: [name: string, edit: (view: DataView, table: number) => void][] = [
    ['a snapshot whose L1 table is not cluster aligned', (v, t) => v.setBigUint64(t, v.getBigUint64(t) + 512n)],
    ['a snapshot whose L1 table is too large', (v, t) => v.setUint32(t + 8, 0x1000000)],
    ['a snapshot whose L1 table is past the end of the file', (v, t) => v.setBigUint64(t, 0x7000000n)],
    ['a v3 snapshot table entry without extra data (incomplete)', (v, t) => {
      const bytes = new Uint8Array(v.buffer);
      const extra = v.getUint32(t + 36);
      const strings = v.getUint16(t + 12) + v.getUint16(t + 14);
      bytes.copyWithin(t + 40, t + 40 + extra, t + 40 + extra + strings);
      bytes.fill(0, t + 40 + strings, t + 40 + extra + strings);
      v.setUint32(t + 36, 0);
    }],
  ];
  for (const [name, edit] of snapshotScenarios) {
    it(`H20: ${name}: the same report and messages before and after -r all`, async () => {
      const path = tmp.path(`${name.replace(/\W+/g, '-')}.qcow2`);
      copyFileSync(base, path);
      qemuImgOk(['snapshot', '-c', 'one', path]);
      const bytes = new Uint8Array(readFileSync(path));
      const view = new DataView(bytes.buffer);
      edit(view, Number(view.getBigUint64(64)));
      writeFileSync(path, bytes);
      const before = await ours(path);
      expect({ json: before.json, status: before.status }).toEqual(theirs(path));
      expect(before.messages).toEqual(findings(qemuImg(['check', path]).stderr));
      copyFileSync(path, `${path}.q`);
      const qemuMessages: string[] = [];
      const repairedByQemu = theirs(`${path}.q`, 'all', qemuMessages);
      const repairedByUs = await ours(path, 'all');
      expect({ json: repairedByUs.json, status: repairedByUs.status }).toEqual(repairedByQemu);
      expect(repairedByUs.messages).toEqual(qemuMessages);
      expect(theirs(path)).toEqual(theirs(`${path}.q`));
    });
  }

  it('an image with snapshots and compressed clusters: the same report, before and after damage', async () => {
    const raw = tmp.path('mixed.raw');
    const data = new Uint8Array(2 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i >> 12) % 3 === 0 ? 0 : (i * 7) & 0x3f;
    writeFileSync(raw, data);
    const path = tmp.path('mixed.qcow2');
    qemuImgOk(['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', raw, path]);
    qemuImgOk(['snapshot', '-c', 'one', path]);
    qemuIo(path, 'write -P 9 64k 128k');
    qemuImgOk(['snapshot', '-c', 'two', path]);
    qemuIo(path, 'write -P 8 1M 64k');
    const clean = await ours(path);
    expect(clean.json?.['compressed-clusters']).toBeGreaterThan(0);
    expect({ json: clean.json, status: clean.status }).toEqual(theirs(path));
    // Drop one reference from a cluster the snapshots share: refcount too low.
    const bytes = new Uint8Array(readFileSync(path));
    const at = layout(bytes);
    const v = new DataView(bytes.buffer);
    const shared = Number(v.getBigUint64(at.l2 + 8 * 1) & 0x00fffffffffffe00n) / CS;
    const rc = v.getUint16(at.refblock + 2 * shared);
    expect(rc).toBeGreaterThan(1);
    v.setUint16(at.refblock + 2 * shared, rc - 1);
    writeFileSync(path, bytes);
    const broken = await ours(path);
    expect({ json: broken.json, status: broken.status }).toEqual(theirs(path));
    expect(broken.json?.corruptions).toBeGreaterThan(0);
    copyFileSync(path, `${path}.q`);
    expect(await ours(path, 'all')).toMatchObject(theirs(`${path}.q`, 'all'));
    expect(theirs(path)).toMatchObject({ status: 0 });
  });

  for (const options of [
    'cluster_size=512',
    'cluster_size=2097152',
    'refcount_bits=1',
    'refcount_bits=64',
    'compat=0.10',
    'extended_l2=on,cluster_size=65536',
    'lazy_refcounts=on',
  ]) {
    it(`the same report on images with -o ${options} (data, compressed and zero clusters, a snapshot)`, async () => {
      const path = tmp.path(`fmt-${options.replace(/\W+/g, '-')}.qcow2`);
      qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', options, path, '8M']);
      qemuIo(path, 'write -P 3 0 300k');
      qemuIo(path, `write -c -P 4 4M ${options === 'cluster_size=2097152' ? '2M' : '64k'}`);
      qemuIo(path, 'write -z 6M 64k');
      if (!options.startsWith('refcount_bits=1')) qemuImgOk(['snapshot', '-c', 'snap', path]);
      qemuIo(path, 'write -P 5 100k 4k');
      const clean = await ours(path);
      expect({ json: clean.json, status: clean.status }).toEqual(theirs(path));
      // Slack at the end of the file, then more writes into it.
      const bytes = new Uint8Array(readFileSync(path));
      const cs = 2 ** new DataView(bytes.buffer).getUint32(20);
      const grown = new Uint8Array(Math.ceil(bytes.length / cs) * cs + cs);
      grown.set(bytes);
      writeFileSync(path, grown);
      qemuIo(path, 'write -P 6 7M 4k'); // QEMU allocates into the file: our view must agree
      const after = await ours(path);
      expect({ json: after.json, status: after.status }).toEqual(theirs(path));
      expect(after.messages).toEqual(findings(qemuImg(['check', path]).stderr));
    });
  }
});
