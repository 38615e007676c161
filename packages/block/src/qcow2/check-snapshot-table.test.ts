import { describe, expect, it } from 'vitest';
import { MemoryFile } from '../memory-file.js';
import { readSnapshotTableForCheck } from './check-snapshot-table.js';
import { createQcow2 } from './create.js';
import { parseQcow2Header, type Qcow2Header } from './header.js';
import { MAX_SNAPSHOT_TABLE_SIZE } from './snapshot-table.js';

const CS = 65536;
const TABLE = 4 * CS;

/** An image whose header says `count` snapshots at TABLE, with entries written by `entry`. */
async function image(count: number, entry: (index: number) => { extra: number; id: number; name: number }): Promise<{ file: MemoryFile; header: Qcow2Header }> {
  const file = new MemoryFile();
  await createQcow2(file, { size: 1 << 20, clusterSize: CS });
  let at = TABLE;
  for (let i = 0; i < count; i++) {
    at = Math.ceil(at / 8) * 8;
    const { extra, id, name } = entry(i);
    const bytes = new Uint8Array(40 + extra + id + name).fill(0x61);
    bytes.fill(0, 0, 40 + Math.min(extra, 24));
    const v = new DataView(bytes.buffer);
    v.setBigUint64(0, 0n);
    v.setUint32(8, 0);
    v.setUint16(12, id);
    v.setUint16(14, name);
    v.setUint32(36, extra);
    await file.write(at, bytes);
    at += bytes.length;
  }
  const fields = new Uint8Array(12);
  const fv = new DataView(fields.buffer);
  fv.setUint32(0, count);
  fv.setBigUint64(4, BigInt(TABLE));
  await file.write(60, fields);
  const header = parseQcow2Header((await read(file, 0, CS)));
  return { file, header };
}

async function read(file: MemoryFile, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.read(offset, out);
  return out;
}

describe('the snapshot table as qemu-img check reads it (QEMU qcow2_check_read_snapshot_table)', () => {
  it('entries with at most 1 KiB of extra data: kept; fewer than 16 bytes in v3: incomplete', async () => {
    const { file, header } = await image(3, (i) => ({ extra: [24, 8, 1024][i]!, id: 1, name: 2 }));
    const log: string[] = [];
    const t = await readSnapshotTableForCheck(file, header, false, (m) => log.push(m));
    expect(t.snapshots.map((s) => s.extraDataSize)).toEqual([24, 8, 1024]);
    expect(t.snapshots[2]!.unknownExtraData.length).toBe(1000);
    expect(t.corruptions).toBe(1);
    expect(log).toEqual(['ERROR snapshot table entry 1 is incomplete']);
  });

  it('H20: more than 1 KiB of extra data fails without repair; with repair it is cut to 1 KiB', async () => {
    const { file, header } = await image(2, (i) => ({ extra: i === 0 ? 5000 : 24, id: 1, name: 1 }));
    await expect(readSnapshotTableForCheck(file, header, false, () => undefined)).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    const log: string[] = [];
    const t = await readSnapshotTableForCheck(file, header, true, (m) => log.push(m));
    expect(log).toEqual(['Discarding too much extra metadata in snapshot table entry 0 (5000 > 1024)']);
    expect(t.snapshots.map((s) => s.extraDataSize)).toEqual([1024, 24]);
    // The second entry is found after all 5000 stored bytes.
    expect(t.snapshots[1]!.id).toBe('a');
    expect(t.corruptions).toBe(1);
  });

  it('H20: more than 65536 snapshots fail without repair; with repair the overhanging ones go and the header says so', async () => {
    const { file, header } = await image(1, () => ({ extra: 24, id: 1, name: 1 }));
    header.nbSnapshots = 65538;
    const log: string[] = [];
    await expect(readSnapshotTableForCheck(file, header, false, (m) => log.push(m))).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    expect(log).toEqual(['ERROR snapshot table too large', 'You can force-remove all 2 overhanging snapshots with qemu-img check -r all']);
    const repaired: string[] = [];
    const t = await readSnapshotTableForCheck(file, header, true, (m) => repaired.push(m));
    expect(repaired[0]).toBe('Discarding 2 overhanging snapshots');
    expect(t.snapshots.length).toBe(65536);
    expect(t.corruptionsFixed).toBe(2);
    expect(new DataView((await read(file, 60, 4)).buffer).getUint32(0)).toBe(65536);
  });

  it('H20: an unaligned table offset fails the check', async () => {
    const { file, header } = await image(1, () => ({ extra: 24, id: 1, name: 1 }));
    header.snapshotsOffset += 8;
    await expect(readSnapshotTableForCheck(file, header, true, () => undefined)).rejects.toThrow(/snapshot table offset invalid/);
  });

  it('H20: a table over 64 MiB fails without repair; with repair the entries from the one crossing 64 MiB are dropped', async () => {
    // Entries of 40 + 24 + 2 * 65535 bytes: the 512th crosses 64 MiB.
    const count = 515;
    const { file, header } = await image(count, () => ({ extra: 24, id: 65535, name: 65535 }));
    const log: string[] = [];
    await expect(readSnapshotTableForCheck(file, header, false, (m) => log.push(m))).rejects.toThrow(/snapshot table is too big/);
    const entry = 40 + 24 + 2 * 65535;
    let kept = 0;
    for (let length = 0; Math.ceil(length / 8) * 8 + entry <= MAX_SNAPSHOT_TABLE_SIZE; kept++) length = Math.ceil(length / 8) * 8 + entry;
    expect(log).toEqual(['ERROR failed to read the snapshot table: Snapshot table is too big', `You can force-remove all ${count - kept} overhanging snapshots with qemu-img check -r all`]);
    const repaired: string[] = [];
    const t = await readSnapshotTableForCheck(file, header, true, (m) => repaired.push(m));
    expect(repaired).toEqual([`Discarding ${count - kept} overhanging snapshots (snapshot table is too big)`]);
    expect(t.snapshots.length).toBe(kept);
    expect(header.nbSnapshots).toBe(kept);
    expect(t.size).toBeLessThanOrEqual(MAX_SNAPSHOT_TABLE_SIZE);
  }, 30_000);
});
