import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createQcow2 } from '../qcow2/create.js';
import { createRaw } from '../raw/raw-driver.js';
import { NodeFile } from './file.js';
import { openImage } from './open-image.js';

const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-nodefile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function qcow2(path: string, backingFile?: string): Promise<void> {
  const file = await NodeFile.open(path, { create: true });
  await createQcow2(file, { size: 1 << 20, clusterSize: 4096, ...(backingFile === undefined ? {} : { backingFile }) });
  await file.close();
}

describe('NodeFile', () => {
  it('reads what it wrote, zeroes past the end, tracks length through truncate', async () => {
    const path = join(dir, 'plain.bin');
    const file = await NodeFile.open(path, { create: true });
    expect(file.length).toBe(0);
    await file.write(10, Uint8Array.from([1, 2, 3]));
    expect(file.length).toBe(13);
    const out = new Uint8Array(8).fill(9);
    await file.read(8, out);
    expect([...out]).toEqual([0, 0, 1, 2, 3, 0, 0, 0]);
    await file.truncate(4096);
    await file.flush();
    expect(file.length).toBe(4096);
    expect(await file.allocatedSize()).toBeGreaterThanOrEqual(0);
    await file.close();
    expect(readFileSync(path).length).toBe(4096);
    await expect(file.read(0, out)).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('read-only files refuse writes with READ_ONLY; a missing file is IO', async () => {
    const path = join(dir, 'ro.bin');
    writeFileSync(path, new Uint8Array(16));
    const file = await NodeFile.open(path, { readOnly: true });
    await expect(file.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: 'READ_ONLY' });
    await file.close();
    await expect(NodeFile.open(join(dir, 'missing.bin'))).rejects.toMatchObject({ code: 'IO' });
  });
});

describe('openImage', () => {
  it('probes raw and qcow2 and resolves relative backing names against the image directory', async () => {
    const raw = await NodeFile.open(join(dir, 'base.raw'), { create: true });
    await createRaw(raw, { size: 1 << 20 });
    await raw.write(0, new Uint8Array(512).fill(4));
    await raw.close();
    await qcow2(join(dir, 'top.qcow2'), 'base.raw');
    const disk = await openImage(join(dir, 'top.qcow2'), { allowBacking: true });
    expect((await disk.info()).format).toBe('qcow2');
    const out = new Uint8Array(512);
    await disk.read(0, out);
    expect(out.every((b) => b === 4)).toBe(true);
    await disk.close();
    const base = await openImage(join(dir, 'base.raw'));
    expect((await base.info()).format).toBe('raw');
    await base.close();
  });

  it('H18: backing files are refused unless allowed; a loop A -> B -> A is refused', async () => {
    await qcow2(join(dir, 'a.qcow2'), 'b.qcow2');
    await qcow2(join(dir, 'b.qcow2'), 'a.qcow2');
    await expect(openImage(join(dir, 'a.qcow2'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(openImage(join(dir, 'a.qcow2'), { allowBacking: true })).rejects.toThrow(/loops/);
    const alone = await openImage(join(dir, 'a.qcow2'), { allowBacking: 'ignore' });
    await alone.close();
  });

  it('H18: a backing chain deeper than the limit is refused', async () => {
    for (let i = 0; i < 6; i++) await qcow2(join(dir, `c${i}.qcow2`), i === 5 ? undefined : `c${i + 1}.qcow2`);
    const ok = await openImage(join(dir, 'c0.qcow2'), { allowBacking: true, maxBackingDepth: 5 });
    await ok.close();
    await expect(openImage(join(dir, 'c0.qcow2'), { allowBacking: true, maxBackingDepth: 4 })).rejects.toThrow(/deeper than 4/);
  });
});
