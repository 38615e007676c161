import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BlockError } from '../errors.js';
import { MemoryFile } from '../memory-file.js';
import { RawDriver } from '../raw/raw-driver.js';
import { amendQcow2, setQcow2Backing } from './amend.js';
import { checkQcow2 } from './check.js';
import { COMPAT_LAZY_REFCOUNTS, EXT_FEATURE_NAME_TABLE } from './constants.js';
import { createQcow2 } from './create.js';
import { backingFormatOf, parseQcow2Header } from './header.js';
import { makeEmptyQcow2 } from './make-empty.js';
import { Qcow2Driver } from './qcow2-driver.js';

const MiB = 1024 * 1024;

/** A fresh file with the contents of `file` (which may be closed). */
function copyOf(file: MemoryFile): MemoryFile {
  return new MemoryFile({ data: file.snapshot() });
}

async function headerOf(file: MemoryFile): Promise<ReturnType<typeof parseQcow2Header>> {
  const bytes = new Uint8Array(65536);
  bytes.set(file.snapshot().subarray(0, 65536));
  return parseQcow2Header(bytes);
}

async function expectClean(file: MemoryFile): Promise<void> {
  const r = await checkQcow2(copyOf(file));
  expect({ corruptions: r.corruptions, leaks: r.leaks, errors: r['check-errors'] }).toEqual({ corruptions: 0, leaks: 0, errors: 0 });
}

describe('qcow2 header rewrite: backing file name and format (qcow2 spec "Header extensions")', () => {
  it('round trips any backing name and format, keeping the other extensions in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 200 }), fc.option(fc.constantFrom('raw', 'qcow2'), { nil: undefined }), async (name, format) => {
        const file = new MemoryFile();
        await createQcow2(file, { size: MiB, backingFile: 'old.img', backingFormat: 'raw' });
        const before = await headerOf(file);
        const driver = await Qcow2Driver.open(file, { ignoreBacking: true });
        await setQcow2Backing(driver, name, format);
        expect(driver.image.header.backingFile).toBe(name);
        await driver.close();
        const after = await headerOf(file);
        expect(after.backingFile).toBe(name);
        expect(backingFormatOf(after)).toBe(format);
        const others = (h: typeof before): number[] => h.extensions.filter((e) => e.type !== 0xe2792aca).map((e) => e.type);
        expect(others(after)).toEqual(others(before));
        expect(after.extensions.some((e) => e.type === EXT_FEATURE_NAME_TABLE)).toBe(others(before).includes(EXT_FEATURE_NAME_TABLE));
        await expectClean(file);
      }),
      { numRuns: 25 },
    );
  });

  it('removes the backing file and its format extension', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: MiB, backingFile: 'old.img', backingFormat: 'raw' });
    const driver = await Qcow2Driver.open(file, { ignoreBacking: true });
    await setQcow2Backing(driver, undefined, 'raw');
    await driver.close();
    const after = await headerOf(file);
    expect(after.backingFile).toBeUndefined();
    expect(after.backingFileOffset).toBe(0);
    expect(backingFormatOf(after)).toBeUndefined();
  });

  it('refuses a header that would not fit in the first cluster, writing nothing', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: MiB, clusterSize: 512, backingFile: 'old.img' });
    const before = file.snapshot().slice(0, 512);
    const driver = await Qcow2Driver.open(file, { ignoreBacking: true });
    const error = await setQcow2Backing(driver, 'x'.repeat(600), 'raw').catch((e: unknown) => e);
    expect(BlockError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    expect(String((error as Error).message)).toMatch(/does not fit|longer than/);
    const tooLong = await setQcow2Backing(driver, 'y'.repeat(1024), 'raw').catch((e: unknown) => e);
    expect(BlockError.isInstance(tooLong) && tooLong.code).toBe('INVALID_ARGUMENT');
    await driver.close();
    expect(file.snapshot().slice(0, 512)).toEqual(before);
  });
});

describe('qcow2 amend: compat and lazy_refcounts', () => {
  it('upgrades 0.10 to 1.1 and back, data and backing name intact', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: MiB, compat: '0.10', backingFile: 'b.img', backingFormat: 'raw' });
    let driver = await Qcow2Driver.open(file, { ignoreBacking: true });
    await driver.write(65536, new Uint8Array(65536).fill(7));
    await amendQcow2(driver, { compat: '1.1', lazyRefcounts: true });
    await driver.write(0, new Uint8Array(512).fill(9));
    await driver.close();
    let h = await headerOf(file);
    expect([h.version, h.compatibleFeatures & COMPAT_LAZY_REFCOUNTS, h.incompatibleFeatures, h.backingFile, backingFormatOf(h)]).toEqual([3, 1n, 0n, 'b.img', 'raw']);
    await expectClean(file);
    const second = copyOf(file);
    driver = await Qcow2Driver.open(second, { ignoreBacking: true });
    await expect(amendQcow2(driver, { compat: '0.10' })).rejects.toThrow(/lazy refcounts/);
    await amendQcow2(driver, { compat: '0.10', lazyRefcounts: false });
    const back = new Uint8Array(65536);
    await driver.read(65536, back);
    expect(back.every((b) => b === 7)).toBe(true);
    await driver.close();
    h = await headerOf(second);
    expect([h.version, h.backingFile, backingFormatOf(h)]).toEqual([2, 'b.img', 'raw']);
    await expectClean(second);
  });

  it('downgrade refuses v3-only features: zero clusters, extended L2, refcount bits', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: MiB });
    const driver = await Qcow2Driver.open(file);
    await driver.write(0, new Uint8Array(65536).fill(1));
    await driver.writeZeroes(0, 65536, { mayUnmap: false });
    expect(driver.image.l2Entry(await driver.image.readL2(driver.image.l1Entry(0).offset), 0).kind).toMatch(/^zero/);
    await expect(amendQcow2(driver, { compat: '0.10' })).rejects.toThrow(/zero clusters/);
    await driver.close();
    for (const options of [{ extendedL2: true }, { refcountBits: 8 }]) {
      const f = new MemoryFile();
      await createQcow2(f, { size: MiB, ...options });
      const d = await Qcow2Driver.open(f);
      const error = await amendQcow2(d, { compat: '0.10' }).catch((e: unknown) => e);
      expect(BlockError.isInstance(error) && error.code).toBe('UNSUPPORTED');
      await d.close();
      expect((await headerOf(f)).version).toBe(3);
    }
  });

  it('turning lazy refcounts off on a dirty image writes the refcounts and clears the dirty bit', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: MiB, lazyRefcounts: true });
    const driver = await Qcow2Driver.open(file);
    await driver.write(0, new Uint8Array(3 * 65536).fill(1));
    await driver.flush();
    expect((await headerOf(file)).incompatibleFeatures & 1n).toBe(1n);
    await amendQcow2(driver, { lazyRefcounts: false });
    const h = await headerOf(file);
    expect([h.incompatibleFeatures, h.compatibleFeatures]).toEqual([0n, 0n]);
    await expectClean(file);
    await driver.close();
  });
});

describe('qcow2 make empty (bdrv_make_empty)', () => {
  it('reads fall through to the backing file afterwards, check is clean and the clusters are free', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ cluster: fc.nat({ max: 63 }), count: fc.integer({ min: 1, max: 8 }), byte: fc.integer({ min: 1, max: 255 }) }), { maxLength: 12 }), async (writes) => {
        const cs = 4096;
        const baseFile = new MemoryFile();
        const baseData = new Uint8Array(64 * cs).map((_, i) => (i * 31) & 0xff);
        await baseFile.write(0, baseData);
        const file = new MemoryFile();
        await createQcow2(file, { size: 64 * cs, clusterSize: cs, backingFile: 'base.raw', backingFormat: 'raw' });
        const driver = await Qcow2Driver.open(file, { openBacking: async () => RawDriver.open(baseFile, { readOnly: true }) });
        for (const w of writes) {
          const count = Math.min(w.count, 64 - w.cluster);
          await driver.write(w.cluster * cs, new Uint8Array(count * cs).fill(w.byte));
        }
        await driver.writeZeroes(5 * cs, cs);
        await driver.flush();
        await makeEmptyQcow2(driver);
        const back = new Uint8Array(64 * cs);
        await driver.read(0, back);
        expect(Buffer.compare(back, baseData)).toBe(0);
        await driver.close();
        await expectClean(file);
        const r = await checkQcow2(copyOf(file));
        // Only metadata is left: header, L1, refcount table and block, one L2 table.
        expect(r['allocated-clusters']).toBeLessThanOrEqual(5);
      }),
      { numRuns: 10 },
    );
  });

  it('refuses an image with internal snapshots', async () => {
    const { createSnapshot } = await import('./snapshot.js');
    const file = new MemoryFile();
    await createQcow2(file, { size: MiB });
    const driver = await Qcow2Driver.open(file);
    await driver.write(0, new Uint8Array(512).fill(1));
    await createSnapshot(driver, { name: 's' });
    await expect(makeEmptyQcow2(driver)).rejects.toThrow(/snapshots/);
    await driver.close();
  });
});
