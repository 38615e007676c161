/**
 * The allocation-free hot path of reads and in-place writes (Qcow2Image.plainHostCluster) takes
 * only plain allocated clusters of cached tables; every other entry — reserved bits, zero flag,
 * compressed, unaligned — goes through the general path, which decodes and validates it.
 */
import { describe, expect, it } from 'vitest';
import { MemoryFile } from '../memory-file.js';
import { createQcow2 } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';

async function image(): Promise<Qcow2Driver> {
  const file = new MemoryFile();
  await createQcow2(file, { size: 1 << 20, clusterSize: 4096 });
  const disk = await Qcow2Driver.open(file);
  await disk.write(0, new Uint8Array(3 * 4096).fill(5));
  return disk;
}

/** The cached L2 table of the first 2 MiB and the byte offset of guest cluster `index`'s entry. */
function entryOf(disk: Qcow2Driver, index: number): { view: DataView; p: number } {
  const table = disk.image.l2Cache.peek(disk.image.l1Entry(0).offset);
  if (table === undefined) throw new Error('L2 table not cached');
  return { view: table.view, p: index * 8 };
}

describe('qcow2 hot path', () => {
  it('serves plain clusters of a cached table, and returns -1 for anything else', async () => {
    const disk = await image();
    const host = disk.image.plainHostCluster(1, true);
    expect(host).toBeGreaterThan(0);
    expect(host % 4096).toBe(0);
    expect(disk.image.plainHostCluster(7, false)).toBe(-1); // unallocated
    const { view, p } = entryOf(disk, 1);
    view.setUint32(p + 4, view.getUint32(p + 4) | 1); // zero flag
    expect(disk.image.plainHostCluster(1, false)).toBe(-1);
    const out = new Uint8Array(4096).fill(9);
    await disk.read(4096, out);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it('H: an entry with reserved bits set is CORRUPT_IMAGE on read even when its table is cached', async () => {
    const disk = await image();
    const { view, p } = entryOf(disk, 2);
    view.setUint32(p + 4, view.getUint32(p + 4) | 0x100); // reserved bit 8
    await expect(disk.read(2 * 4096, new Uint8Array(512))).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
  });

  it('H: an unaligned host offset in a cached table is CORRUPT_IMAGE on write, not a write at that offset', async () => {
    const disk = await image();
    const { view, p } = entryOf(disk, 0);
    view.setUint32(p + 4, view.getUint32(p + 4) + 512); // offset no longer cluster aligned
    await expect(disk.write(100, new Uint8Array(10).fill(1))).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
  });
});
