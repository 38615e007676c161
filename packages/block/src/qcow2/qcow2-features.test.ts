import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockDriver } from '../block-driver.js';
import { MemoryFile } from '../memory-file.js';
import { RawDriver } from '../raw/raw-driver.js';
import { EXT_BITMAPS } from './constants.js';
import { createQcow2 } from './create.js';
import { parseQcow2Header, serializeQcow2Header } from './header.js';
import { Qcow2Driver } from './qcow2-driver.js';

function fill(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

describe('qcow2 engine behaviour', () => {
  it('concurrent writes to both halves of one new cluster allocate it once and keep both', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 1 << 20, clusterSize: 65536 });
    const disk = await Qcow2Driver.open(file);
    const before = file.length;
    await Promise.all(Array.from({ length: 32 }, (_, i) => disk.write(i * 2048, fill(2048, i + 1))));
    const out = new Uint8Array(65536);
    await disk.read(0, out);
    for (let i = 0; i < 32; i++) expect(out[i * 2048]).toBe(i + 1);
    // one L2 table and one data cluster
    expect(file.length - before).toBe(2 * 65536);
    await disk.close();
  });

  it('overlapping concurrent writes: every byte ends as one of the writers wrote it, none lost or torn into garbage', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(60000), fc.integer({ min: 1, max: 20000 })), { minLength: 2, maxLength: 8 }),
        fc.boolean(),
        async (writes, extendedL2) => {
          const file = new MemoryFile();
          await createQcow2(file, { size: 81920, clusterSize: 16384, extendedL2 });
          const disk = await Qcow2Driver.open(file);
          await disk.write(0, fill(81920, 0xff));
          await disk.discard(16384, 32768);
          await Promise.all(writes.map(([offset, length], i) => disk.write(offset, fill(Math.min(length, 81920 - offset), i + 1))));
          const out = new Uint8Array(81920);
          await disk.read(0, out);
          let problem = '';
          for (let b = 0; b < out.length && problem === ''; b++) {
            let covered = false;
            let ok = false;
            writes.forEach(([offset, length], i) => {
              if (b >= offset && b < offset + length) {
                covered = true;
                if (out[b] === i + 1) ok = true;
              }
            });
            if (!covered) ok = out[b] === (b >= 16384 && b < 49152 ? 0 : 0xff);
            if (!ok) problem = `byte ${b} = ${out[b]}`;
          }
          expect(problem).toBe('');
          await disk.close();
        },
      ),
      { numRuns: Number(process.env.QCOW2_MODEL_RUNS ?? 40) },
    );
  });

  it('copy-on-write of partial clusters reads the backing file; the backing file is never written', async () => {
    const baseBytes = new Uint8Array(256 * 1024);
    for (let i = 0; i < baseBytes.length; i++) baseBytes[i] = (i * 13) & 0xff;
    const baseFile = new MemoryFile({ data: baseBytes, readOnly: true });
    const file = new MemoryFile();
    await createQcow2(file, { size: 512 * 1024, clusterSize: 16384, backingFile: 'base.raw', backingFormat: 'raw' });
    let opened: string | undefined;
    const disk = await Qcow2Driver.open(file, {
      openBacking: (name, format) => {
        opened = `${name}:${format}`;
        return Promise.resolve(RawDriver.open(baseFile, { readOnly: true }));
      },
    });
    expect(opened).toBe('base.raw:raw');
    await Promise.all([disk.write(100, fill(50, 0xee)), disk.write(16384 * 3 + 5, fill(10, 0xdd)), disk.writeZeroes(32768, 16384)]);
    const model = new Uint8Array(512 * 1024);
    model.set(baseBytes);
    model.fill(0xee, 100, 150);
    model.fill(0xdd, 16384 * 3 + 5, 16384 * 3 + 15);
    model.fill(0, 32768, 49152);
    const out = new Uint8Array(model.length);
    await disk.read(0, out);
    expect(Buffer.compare(out, model)).toBe(0);
    const status = await disk.blockStatus(0, 512 * 1024);
    expect(status).toMatchObject({ data: true, depth: 0 });
    const backingStatus = await disk.blockStatus(16384, 16384);
    expect(backingStatus).toMatchObject({ depth: 1, data: true });
    const zeroStatus = await disk.blockStatus(32768, 16384);
    expect(zeroStatus).toMatchObject({ zero: true, data: false, depth: 0 });
    const past = await disk.blockStatus(300 * 1024, 4096);
    expect(past).toMatchObject({ zero: true, data: false });
  });

  it('refuses an image with a backing file unless the caller allows backing files', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 65536, backingFile: '/etc/passwd' });
    await expect(Qcow2Driver.open(file)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const alone = await Qcow2Driver.open(file, { ignoreBacking: true });
    const out = new Uint8Array(16);
    await alone.read(0, out);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it('lazy refcounts: the dirty bit is set on the first write; a crashed image is repaired on open', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 4 << 20, clusterSize: 4096, lazyRefcounts: true });
    const disk = await Qcow2Driver.open(file);
    expect((await disk.info()).dirty).toBe(false);
    await disk.write(0, fill(100000, 7));
    await disk.flush();
    // "Crash": copy the file without closing (refcounts may be stale on disk).
    const crashed = file.snapshot();
    expect(parseQcow2Header(crashed.slice(0, 4096)).incompatibleFeatures & 1n).toBe(1n);
    const crashedFile = new MemoryFile({ data: crashed });
    const reopened = await Qcow2Driver.open(crashedFile);
    expect(parseQcow2Header(crashedFile.snapshot().slice(0, 4096)).incompatibleFeatures & 1n).toBe(0n);
    // After the repair, every referenced cluster has a refcount >= 1: a new write must not reuse one.
    await reopened.write(200000, fill(100000, 9));
    const out = new Uint8Array(100000);
    await reopened.read(0, out);
    expect(out.every((b) => b === 7)).toBe(true);
    await disk.close();
    await reopened.close();
  });

  it('unknown autoclear bits are cleared on a writable open; compatible bits and unknown extensions are kept', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 65536, clusterSize: 4096 });
    const bytes = file.snapshot();
    const header = parseQcow2Header(bytes.slice(0, 4096));
    header.autoclearFeatures = (1n << 0n) | (1n << 5n);
    header.compatibleFeatures = 1n << 7n;
    header.extensions.push({ type: 0x12345678, data: Uint8Array.from([1, 2, 3]) }, { type: EXT_BITMAPS, data: fill(24, 4) });
    bytes.set(serializeQcow2Header(header), 0);
    const readOnly = await Qcow2Driver.open(new MemoryFile({ data: bytes }), { readOnly: true });
    expect(readOnly.image.header.autoclearFeatures).toBe(0b100001n);
    const rwFile = new MemoryFile({ data: bytes });
    const disk = await Qcow2Driver.open(rwFile);
    await disk.write(0, fill(10, 1));
    await disk.close();
    const after = parseQcow2Header(rwFile.snapshot().slice(0, 4096));
    expect(after.autoclearFeatures).toBe(0n);
    expect(after.compatibleFeatures).toBe(1n << 7n);
    expect(after.extensions.find((e) => e.type === 0x12345678)?.data).toEqual(Uint8Array.from([1, 2, 3]));
    expect(after.extensions.find((e) => e.type === EXT_BITMAPS)?.data).toEqual(fill(24, 4));
  });

  it('crash safety: the file after every single host write opens and reads consistently', async () => {
    // A BlockFile that records a copy of the image after each write (an in-order crash model).
    const file = new MemoryFile();
    await createQcow2(file, { size: 2 << 20, clusterSize: 4096 });
    const states: Uint8Array[] = [];
    const write = file.write.bind(file);
    file.write = async (offset, buffer) => {
      await write(offset, buffer);
      states.push(file.snapshot());
    };
    let flushedStates = 0;
    const flush = file.flush.bind(file);
    file.flush = async () => {
      await flush();
      flushedStates = states.length;
    };
    const disk = await Qcow2Driver.open(file);
    await disk.write(0, fill(3 * 4096, 1));
    await disk.flush();
    const durableAfter = flushedStates;
    await Promise.all([disk.write(1 << 20, fill(5000, 2)), disk.writeZeroes(0, 4096), disk.discard(4096, 4096)]);
    await disk.write(600 * 1024, fill(300 * 1024, 3)); // allocates a new L2 table, maybe a refcount block
    await disk.close();
    expect(states.length).toBeGreaterThan(5);
    for (const [i, state] of states.entries()) {
      const crashed: BlockDriver = await Qcow2Driver.open(new MemoryFile({ data: state }), { readOnly: true });
      const out = new Uint8Array(crashed.length);
      await crashed.read(0, out);
      // Everything acknowledged before the completed flush survives.
      if (i >= durableAfter - 1) expect(out.subarray(8192, 12288).every((b) => b === 1)).toBe(true);
    }
  });

  it('resize: grows (relocating the L1 table) and the new space reads as zeroes', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 1000 * 512, clusterSize: 512 });
    const disk = await Qcow2Driver.open(file);
    await disk.write(0, fill(1000 * 512, 6));
    await disk.resize(40 << 20);
    const tail = new Uint8Array(4096);
    await disk.read(1000 * 512, tail);
    expect(tail.every((b) => b === 0)).toBe(true);
    await disk.write((40 << 20) - 512, fill(512, 1));
    const head = new Uint8Array(1000 * 512);
    await disk.read(0, head);
    expect(head.every((b) => b === 6)).toBe(true);
    await disk.close();
  });
});
