import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { MemoryFile } from '../memory-file.js';
import { qemuImg, qemuImgOk, qemuImgSkipReason, tempDir } from '../testing/node-qemu-img.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { applySnapshot, createSnapshot, deleteSnapshot, listSnapshots } from './snapshot.js';

/**
 * Internal snapshots against qemu-img: snapshots we create are listed, applied and deleted by
 * qemu-img and the reverse, with `qemu-img check` clean after each of our operations.
 */
const skip = qemuImgSkipReason();
const MiB = 1 << 20;

/** Opens an image file in memory, runs `fn` on our driver, writes the bytes back. */
async function withImage<T>(path: string, fn: (driver: Qcow2Driver) => Promise<T>): Promise<T> {
  const file = new MemoryFile({ data: new Uint8Array(readFileSync(path)) });
  const driver = await Qcow2Driver.open(file, { path });
  try {
    return await fn(driver);
  } finally {
    await driver.close();
    writeFileSync(path, file.snapshot());
  }
}

function expectCheckClean(path: string): void {
  const r = qemuImg(['check', '--output=json', path]);
  const report = JSON.parse(r.stdout) as Record<string, unknown>;
  expect({ status: r.status, corruptions: report.corruptions, leaks: report.leaks, 'check-errors': report['check-errors'] }).toEqual({
    status: 0,
    corruptions: undefined,
    leaks: undefined,
    'check-errors': 0,
  });
}

function qemuSnapshots(path: string): { id: string; name: string; 'vm-state-size': number; 'date-sec': number; 'date-nsec': number; 'vm-clock-nsec': number; icount?: number }[] {
  const info = JSON.parse(qemuImgOk(['info', '--output=json', path])) as { snapshots?: [] };
  return info.snapshots ?? [];
}

function qemuIo(path: string, command: string): string {
  const r = spawnSync('qemu-io', ['-f', 'qcow2', '-c', command, path], { encoding: 'utf8' });
  if (r.status !== 0 || /fail|error|Pattern verification/i.test(r.stdout + r.stderr)) {
    throw new Error(`qemu-io '${command}': ${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

function fill(length: number, byte: number): Uint8Array {
  return new Uint8Array(length).fill(byte);
}

describe.skipIf(skip !== undefined)('qcow2 internal snapshots vs qemu-img', () => {
  const tmp = tempDir('virtio-ts-snapshot-');
  afterAll(() => tmp.remove());

  it('ours: create, apply and delete; qemu-img lists, reads and checks clean after each step', async () => {
    const path = tmp.path('ours.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=65536', path, String(8 * MiB)]);
    qemuIo(path, 'write -P 0xaa 0 1M');
    qemuIo(path, 'write -c -P 0x11 2M 64k'); // a compressed cluster too

    await withImage(path, (d) => createSnapshot(d, { name: 'first' }));
    expectCheckClean(path);
    const listed = qemuSnapshots(path);
    expect(listed.map((s) => [s.id, s.name, s['vm-state-size'], s['vm-clock-nsec'], s.icount])).toEqual([['1', 'first', 0, 0, 0]]);

    // QEMU writes over our snapshot: its copy-on-write must find our refcounts right.
    qemuIo(path, 'write -P 0xbb 512k 1M');
    qemuIo(path, 'write -P 0x22 2M 64k');
    expectCheckClean(path);
    // The snapshot still holds the old data (read through qemu-img convert -l).
    qemuImgOk(['convert', '-f', 'qcow2', '-O', 'raw', '-l', 'snapshot.name=first', path, `${path}.first.raw`]);
    const first = new Uint8Array(readFileSync(`${path}.first.raw`));
    expect(first.subarray(0, MiB).every((b) => b === 0xaa)).toBe(true);
    expect(first.subarray(MiB, 2 * MiB).every((b) => b === 0)).toBe(true);
    expect(first.subarray(2 * MiB, 2 * MiB + 65536).every((b) => b === 0x11)).toBe(true);

    await withImage(path, (d) => applySnapshot(d, 'first'));
    expectCheckClean(path);
    qemuIo(path, 'read -P 0xaa 0 1M');
    qemuIo(path, 'read -P 0 1M 1M');
    qemuIo(path, 'read -P 0x11 2M 64k');

    await withImage(path, async (d) => {
      await createSnapshot(d, { name: 'second', id: 'custom-id' });
      expect((await listSnapshots(d)).map((s) => s.id)).toEqual(['1', 'custom-id']);
    });
    expectCheckClean(path);
    await withImage(path, (d) => deleteSnapshot(d, '1'));
    expectCheckClean(path);
    expect(qemuSnapshots(path).map((s) => s.name)).toEqual(['second']);
    await withImage(path, (d) => deleteSnapshot(d, 'second'));
    expectCheckClean(path);
    expect(qemuSnapshots(path)).toEqual([]);
    qemuIo(path, 'read -P 0xaa 0 1M');
  });

  it('ours: writes through our driver after a snapshot copy-on-write and leave the snapshot intact', async () => {
    const path = tmp.path('cow.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', path, String(4 * MiB)]);
    await withImage(path, async (d) => {
      await d.write(0, fill(MiB, 0x5a));
      await createSnapshot(d, { name: 's' });
      await d.write(256 * 1024, fill(64 * 1024, 0x6b));
      await d.write(3 * MiB, fill(4096, 0x7c));
    });
    expectCheckClean(path);
    qemuImgOk(['convert', '-f', 'qcow2', '-O', 'raw', '-l', 'snapshot.name=s', path, `${path}.s.raw`]);
    const s = new Uint8Array(readFileSync(`${path}.s.raw`));
    expect(s.subarray(0, MiB).every((b) => b === 0x5a)).toBe(true);
    expect(s.subarray(MiB).every((b) => b === 0)).toBe(true);
    qemuIo(path, 'read -P 0x6b 256k 64k');
    qemuIo(path, 'read -P 0x7c 3M 4k');
    await withImage(path, async (d) => {
      await applySnapshot(d, 's');
      const back = new Uint8Array(2 * MiB);
      await d.read(0, back);
      expect(back.subarray(0, MiB).every((b) => b === 0x5a)).toBe(true);
      expect(back.subarray(MiB).every((b) => b === 0)).toBe(true);
    });
    expectCheckClean(path);
  });

  it('qemu-img: snapshots it creates are listed (every field), applied and deleted by us', async () => {
    const path = tmp.path('theirs.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', path, String(4 * MiB)]);
    qemuIo(path, 'write -P 0x01 0 512k');
    qemuImgOk(['snapshot', '-c', 'one', path]);
    qemuIo(path, 'write -P 0x02 0 256k');
    qemuImgOk(['snapshot', '-c', 'two', path]);
    qemuIo(path, 'write -P 0x03 128k 64k');
    const theirs = qemuSnapshots(path);
    await withImage(path, async (d) => {
      const ours = await listSnapshots(d);
      expect(
        ours.map((s) => ({
          id: s.id,
          name: s.name,
          'vm-state-size': s.vmStateSize,
          'date-sec': s.dateSec,
          'date-nsec': s.dateNsec,
          'vm-clock-nsec': Number(s.vmClockNsec),
          icount: s.icount === -1n ? undefined : Number(s.icount),
          diskSize: s.diskSize,
        })),
      ).toEqual(
        theirs.map((s) => ({
          id: s.id,
          name: s.name,
          'vm-state-size': s['vm-state-size'],
          'date-sec': s['date-sec'],
          'date-nsec': s['date-nsec'],
          'vm-clock-nsec': s['vm-clock-nsec'],
          icount: s.icount,
          diskSize: 4 * MiB,
        })),
      );
      await applySnapshot(d, 'one');
      const buffer = new Uint8Array(1024 * 1024);
      await d.read(0, buffer);
      expect(buffer.subarray(0, 512 * 1024).every((b) => b === 1)).toBe(true);
      expect(buffer.subarray(512 * 1024).every((b) => b === 0)).toBe(true);
    });
    expectCheckClean(path);
    await withImage(path, (d) => deleteSnapshot(d, 'two'));
    expectCheckClean(path);
    expect(qemuSnapshots(path).map((s) => s.name)).toEqual(['one']);
    // QEMU applies and deletes what remains after our changes.
    qemuIo(path, 'write -P 0x04 0 64k');
    qemuImgOk(['snapshot', '-a', 'one', path]);
    qemuIo(path, 'read -P 0x01 0 512k');
    qemuImgOk(['snapshot', '-d', 'one', path]);
    expectCheckClean(path);
  });

  it('refuses unknown snapshots, duplicate IDs and a read-only image with typed errors', async () => {
    const path = tmp.path('errors.qcow2');
    qemuImgOk(['create', '-q', '-f', 'qcow2', path, String(MiB)]);
    await withImage(path, async (d) => {
      await createSnapshot(d, { name: 'a', id: '7' });
      await expect(createSnapshot(d, { name: 'b', id: '7' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(applySnapshot(d, 'nope')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(deleteSnapshot(d, 'nope')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      const next = await createSnapshot(d, { name: 'c' });
      expect(next.id).toBe('8'); // QEMU: one more than the largest numeric ID
    });
    const ro = await Qcow2Driver.open(new MemoryFile({ data: new Uint8Array(readFileSync(path)), readOnly: true }));
    await expect(createSnapshot(ro, { name: 'x' })).rejects.toMatchObject({ code: 'READ_ONLY' });
    expect((await listSnapshots(ro)).map((s) => s.name)).toEqual(['a', 'c']);
    await ro.close();
  });

  for (const options of ['cluster_size=512', 'refcount_bits=64', 'refcount_bits=2', 'compat=0.10', 'extended_l2=on']) {
    it(`ours on -o ${options}: create, QEMU writes, apply, delete; qemu-img check clean after each`, async () => {
      const path = tmp.path(`fmt-${options.replace(/\W+/g, '-')}.qcow2`);
      qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', options, path, String(2 * MiB)]);
      qemuIo(path, 'write -P 0x31 0 256k');
      await withImage(path, (d) => createSnapshot(d, { name: 'a' }));
      expectCheckClean(path);
      qemuIo(path, 'write -P 0x32 64k 64k');
      expectCheckClean(path);
      await withImage(path, (d) => applySnapshot(d, 'a'));
      expectCheckClean(path);
      qemuIo(path, 'read -P 0x31 0 256k');
      await withImage(path, (d) => deleteSnapshot(d, 'a'));
      expectCheckClean(path);
      expect(qemuSnapshots(path)).toEqual([]);
    });
  }
});
