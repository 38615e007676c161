/**
 * Images made by qemu-img and qemu-io, read by vimg: `vimg convert -O raw` must equal
 * `qemu-img convert -O raw` byte for byte, and `vimg info --output=json` must agree with
 * `qemu-img info --output=json` on every field both print.
 */
import { copyFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesEqual, mixedBytes, qemuSkipReason, run, runOk, tempDir, vimg, vimgOk, writeBytes } from './testing/interop-support.js';

const skip = qemuSkipReason();
const SIZE = 3 * 1024 * 1024 + 512 * 3; // not a multiple of any cluster size

interface Case {
  readonly name: string;
  readonly options: string;
  /** qemu-io commands; `write -c` makes compressed clusters. */
  readonly io: readonly string[];
}

const DATA_WRITES = ['write -s data.bin 0 64k', 'write -P 0x11 1536 3k', 'write -s data.bin 1M 300k', 'write -z 1100k 64k', 'discard 1M 8k', 'write -P 0xee 3M 1536'];
const COMPRESSED_WRITES = ['write -c -s data.bin 0 128k', 'write -c -s data.bin 2M 256k', 'write -P 0x22 2M 4k'];

const cases: Case[] = [
  { name: 'cluster_size=512', options: 'cluster_size=512', io: DATA_WRITES },
  { name: 'cluster_size=4k compat=0.10', options: 'cluster_size=4k,compat=0.10', io: DATA_WRITES },
  { name: 'compat=0.10 default clusters', options: 'compat=0.10', io: DATA_WRITES },
  { name: 'refcount_bits=1', options: 'refcount_bits=1', io: DATA_WRITES },
  { name: 'refcount_bits=2 cluster_size=1k', options: 'refcount_bits=2,cluster_size=1k', io: DATA_WRITES },
  { name: 'refcount_bits=4', options: 'refcount_bits=4', io: DATA_WRITES },
  { name: 'refcount_bits=8 lazy_refcounts=on', options: 'refcount_bits=8,lazy_refcounts=on', io: DATA_WRITES },
  { name: 'refcount_bits=32', options: 'refcount_bits=32', io: DATA_WRITES },
  { name: 'refcount_bits=64 cluster_size=2M', options: 'refcount_bits=64,cluster_size=2M', io: DATA_WRITES },
  { name: 'extended_l2=on cluster_size=32k', options: 'extended_l2=on,cluster_size=32k', io: DATA_WRITES },
  { name: 'extended_l2=on cluster_size=2M', options: 'extended_l2=on,cluster_size=2M', io: DATA_WRITES },
  { name: 'compression zlib', options: 'compression_type=zlib', io: COMPRESSED_WRITES },
  { name: 'compression zstd', options: 'compression_type=zstd', io: COMPRESSED_WRITES },
  { name: 'compression zstd, 4k clusters, extended_l2=off', options: 'compression_type=zstd,cluster_size=4k', io: COMPRESSED_WRITES },
];

/** qemu-img info fields vimg must print identically. */
function comparable(json: Record<string, unknown>): Record<string, unknown> {
  const keys = ['virtual-size', 'filename', 'format', 'actual-size', 'cluster-size', 'dirty-flag', 'backing-filename', 'full-backing-filename', 'backing-filename-format', 'format-specific'];
  const out: Record<string, unknown> = {};
  for (const key of keys) if (key in json) out[key] = json[key];
  if (Array.isArray(json['snapshots'])) {
    out['snapshots'] = (json['snapshots'] as Record<string, unknown>[]).map((s) => ({ id: s['id'], name: s['name'], 'date-sec': s['date-sec'], 'vm-state-size': s['vm-state-size'], 'vm-clock-sec': s['vm-clock-sec'] }));
  }
  return out;
}

describe.skipIf(skip !== undefined)('interop: qemu-img writes, vimg reads', () => {
  const tmp = tempDir('vimg-read-');
  const at = tmp.path;
  beforeAll(() => {
    writeBytes(at('data.bin'), mixedBytes(1 << 20, 7));
  });
  afterAll(() => tmp.remove());

  async function expectSameContent(image: string, label: string): Promise<void> {
    runOk('qemu-img', ['convert', '-O', 'raw', image, at(`${label}.qemu.raw`)], tmp.dir);
    await vimgOk('convert', '-O', 'raw', at(image), at(`${label}.vimg.raw`));
    expect(filesEqual(at(`${label}.qemu.raw`), at(`${label}.vimg.raw`)), `${label}: vimg convert -O raw differs from qemu-img's`).toBe(true);
  }

  async function expectSameInfo(image: string, chain = false): Promise<void> {
    const args = ['info', '--output=json', ...(chain ? ['--backing-chain'] : []), image];
    const qemu: unknown = JSON.parse(runOk('qemu-img', args, tmp.dir));
    const previous = process.cwd();
    process.chdir(tmp.dir);
    let ours: unknown;
    try {
      ours = JSON.parse(await vimgOk(...args));
    } finally {
      process.chdir(previous);
    }
    const pick = (v: unknown): unknown => (Array.isArray(v) ? v.map((x) => comparable(x as Record<string, unknown>)) : comparable(v as Record<string, unknown>));
    expect(pick(ours)).toEqual(pick(qemu));
  }

  for (const c of cases) {
    it(`${c.name}: same bytes and same info as qemu-img`, async () => {
      const name = `${c.name.replace(/[^a-z0-9]+/gi, '_')}.qcow2`;
      runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', c.options, name, String(SIZE)], tmp.dir);
      runOk('qemu-io', ['-f', 'qcow2', ...c.io.flatMap((cmd) => ['-c', cmd]), name], tmp.dir);
      await expectSameContent(name, name);
      await expectSameInfo(name);
    });
  }

  it('a backing chain three deep (raw <- qcow2 <- qcow2 <- qcow2), relative names', async () => {
    runOk('qemu-img', ['create', '-q', '-f', 'raw', 'c0.raw', String(SIZE)], tmp.dir);
    runOk('qemu-io', ['-f', 'raw', '-c', 'write -s data.bin 0 1M', '-c', 'write -P 0x40 2M 1M', 'c0.raw'], tmp.dir);
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'c0.raw', '-F', 'raw', 'c1.qcow2'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x41 64k 64k', '-c', 'write -z 2M 128k', 'c1.qcow2'], tmp.dir);
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', 'c1.qcow2', '-F', 'qcow2', 'c2.qcow2'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x42 100k 10k', '-c', 'discard 0 4k', 'c2.qcow2'], tmp.dir);
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', '-b', 'c2.qcow2', '-F', 'qcow2', 'c3.qcow2'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x43 4k 2k', '-c', 'write -z 2100k 4k', 'c3.qcow2'], tmp.dir);
    await expectSameContent('c3.qcow2', 'chain');
    await expectSameInfo('c3.qcow2', true);
    // map: the same runs as qemu-img (JSON, fields start/length/depth/zero/data).
    const qemuMap = JSON.parse(runOk('qemu-img', ['map', '--output=json', 'c3.qcow2'], tmp.dir)) as Record<string, unknown>[];
    const ourMap = JSON.parse(await vimgOk('map', '--output=json', at('c3.qcow2'))) as Record<string, unknown>[];
    // The raw base (depth 3) is left out: Node has no SEEK_DATA, so vimg maps a raw file as all data.
    const strip = (entries: Record<string, unknown>[]): unknown[] => entries.filter((e) => e['depth'] !== 3).map((e) => ({ start: e['start'], length: e['length'], depth: e['depth'], data: e['data'], offset: e['offset'] }));
    expect(strip(ourMap)).toEqual(strip(qemuMap));
  });

  it('internal snapshots: current state and the snapshot list', async () => {
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', 'snap.qcow2', String(SIZE)], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -s data.bin 0 512k', 'snap.qcow2'], tmp.dir);
    runOk('qemu-img', ['snapshot', '-c', 'first', 'snap.qcow2'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x55 64k 128k', '-c', 'discard 256k 64k', 'snap.qcow2'], tmp.dir);
    runOk('qemu-img', ['snapshot', '-c', 'second', 'snap.qcow2'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x66 1M 64k', 'snap.qcow2'], tmp.dir);
    await expectSameContent('snap.qcow2', 'snap');
    await expectSameInfo('snap.qcow2');
    const list = await vimgOk('snapshot', '-l', at('snap.qcow2'));
    expect(list).toBe(runOk('qemu-img', ['snapshot', '-l', 'snap.qcow2'], tmp.dir));
  });

  it('info human output matches qemu-img 7.2 line for line', async () => {
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd,lazy_refcounts=on', 'human.qcow2', '1G'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write 0 1M', 'human.qcow2'], tmp.dir);
    const previous = process.cwd();
    process.chdir(tmp.dir);
    try {
      expect(await vimgOk('info', 'human.qcow2')).toBe(runOk('qemu-img', ['info', 'human.qcow2'], tmp.dir));
      expect(await vimgOk('info', '-f', 'raw', 'data.bin')).toBe(runOk('qemu-img', ['info', '-f', 'raw', 'data.bin'], tmp.dir));
    } finally {
      process.chdir(previous);
    }
  });

  /** Sets the 16-bit refcount of `cluster` in the first refcount block (qcow2 spec, Refcounts). */
  function setRefcount(path: string, cluster: number, value: number): void {
    const fd = openSync(path, 'r+');
    try {
      const header = Buffer.alloc(104);
      readSync(fd, header, 0, 104, 0);
      const table = Number(header.readBigUInt64BE(48));
      const entry = Buffer.alloc(8);
      readSync(fd, entry, 0, 8, table);
      const block = Number(entry.readBigUInt64BE(0));
      const out = Buffer.alloc(2);
      out.writeUInt16BE(value);
      writeSync(fd, out, 0, 2, block + cluster * 2);
    } finally {
      closeSync(fd);
    }
  }

  it('check: same report and exit status as qemu-img (clean, leak, corruption, -r leaks, -r all)', async () => {
    runOk('qemu-img', ['create', '-q', '-f', 'qcow2', 'chk.qcow2', '4M'], tmp.dir);
    runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -c -s data.bin 0 64k', '-c', 'write 1M 64k', '-c', 'write 3M 64k', '-c', 'write 2M 64k', 'chk.qcow2'], tmp.dir);
    const variants: [string, (path: string) => void][] = [
      ['clean', () => undefined],
      ['leak', (path) => setRefcount(path, 0, 2)],
      ['corrupt', (path) => setRefcount(path, 5, 0)],
    ];
    for (const [label, damage] of variants) {
      for (const [extra, output] of [[[], 'human'], [[], 'json'], [['-r', 'leaks'], 'human'], [['-r', 'all'], 'json']] as const) {
        {
          const ours = `chk-${label}-ours.qcow2`;
          const theirs = `chk-${label}-qemu.qcow2`;
          copyFileSync(at('chk.qcow2'), at(ours));
          copyFileSync(at('chk.qcow2'), at(theirs));
          damage(at(ours));
          damage(at(theirs));
          const qemu = run('qemu-img', ['check', `--output=${output}`, ...extra, theirs], tmp.dir);
          const previous = process.cwd();
          process.chdir(tmp.dir);
          let mine;
          try {
            mine = await vimg('check', `--output=${output}`, ...extra, ours);
          } finally {
            process.chdir(previous);
          }
          const what = `${label} ${extra.join(' ')} --output=${output}`;
          expect(mine.status, what).toBe(qemu.status);
          expect(mine.stdout.replaceAll(ours, 'X'), what).toBe(qemu.stdout.replaceAll(theirs, 'X'));
        }
      }
    }
  });

  it('H18: a backing file outside the image directory is refused unless allowed', async () => {
    const other = tempDir('vimg-other-');
    try {
      runOk('qemu-img', ['create', '-q', '-f', 'raw', other.path('secret.raw'), '1M']);
      runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', other.path('secret.raw'), '-F', 'raw', 'evil.qcow2'], tmp.dir);
      const refused = await vimg('convert', '-O', 'raw', at('evil.qcow2'), at('evil.raw'));
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/^vimg: Refusing backing file '.*secret\.raw': backing file lies outside .* \[BACKING_REFUSED\]\n$/);
      expect((await vimg('convert', '--allow-backing', other.path('secret.raw'), '-O', 'raw', at('evil.qcow2'), at('evil.raw'))).status).toBe(0);
      runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/passwd', '-F', 'raw', 'passwd.qcow2', '1M'], tmp.dir);
      expect((await vimg('info', '--backing-chain', at('passwd.qcow2'))).stderr).toContain('[BACKING_REFUSED]');
      // info without --backing-chain does not open the backing file at all.
      expect((await vimg('info', at('passwd.qcow2'))).status).toBe(0);
    } finally {
      other.remove();
    }
  });
});
