import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BlockError } from '../errors.js';
import { MemoryFile } from '../memory-file.js';
import { checkExitCode, checkQcow2, qemuImgCheckJson } from './check.js';
import { createDeflateCodec } from './compression-deflate.js';
import { createQcow2 } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { createSnapshot } from './snapshot.js';

const CS = 4096;

/** A small image with data, a compressed cluster and a snapshot; returns its bytes. */
async function sampleImage(): Promise<Uint8Array> {
  const file = new MemoryFile();
  await createQcow2(file, { size: 1 << 20, clusterSize: CS });
  const deflate = createDeflateCodec();
  const driver = await Qcow2Driver.open(file, { codecs: { deflate } });
  await driver.write(0, new Uint8Array(8 * CS).fill(7));
  await driver.writeCompressed(16 * CS, new Uint8Array(CS).fill(9));
  await createSnapshot(driver, { name: 'one' });
  await driver.write(CS, new Uint8Array(CS).fill(8));
  await driver.close();
  return file.snapshot();
}

describe('checkQcow2', () => {
  it('reports a consistent image as clean, with the allocation counters', async () => {
    const result = await checkQcow2(new MemoryFile({ data: await sampleImage() }), { filename: 'x.qcow2' });
    expect(result).toMatchObject({ corruptions: 0, leaks: 0, 'check-errors': 0, 'compressed-clusters': 1, 'total-clusters': 256, filename: 'x.qcow2' });
    expect(result['allocated-clusters']).toBe(9);
    expect(checkExitCode(result)).toBe(0);
    expect(qemuImgCheckJson(result)).toEqual({
      'image-end-offset': result['image-end-offset'],
      'compressed-clusters': 1,
      'total-clusters': 256,
      'check-errors': 0,
      'allocated-clusters': 9,
      filename: 'x.qcow2',
      format: 'qcow2',
      'fragmented-clusters': result['fragmented-clusters'],
    });
  });

  it('finds a leak and repairs it with repair: leaks; a repair needs a writable file', async () => {
    const bytes = await sampleImage();
    const grown = new Uint8Array(bytes.length + CS);
    grown.set(bytes);
    // Refcount of the cluster just past the old end: 1, with nothing referencing it.
    const view = new DataView(grown.buffer);
    const refblock = Number(view.getBigUint64(Number(view.getBigUint64(48))));
    view.setUint16(refblock + 2 * (bytes.length / CS), 1);
    const file = new MemoryFile({ data: grown });
    expect(await checkQcow2(file)).toMatchObject({ leaks: 1, corruptions: 0 });
    expect(checkExitCode(await checkQcow2(file))).toBe(3);
    await expect(checkQcow2(new MemoryFile({ data: grown, readOnly: true }), { repair: 'leaks' })).rejects.toMatchObject({ code: 'READ_ONLY' });
    const repaired = await checkQcow2(file, { repair: 'leaks' });
    expect(repaired).toMatchObject({ leaks: 0, 'leaks-fixed': 1, corruptions: 0 });
  });

  it('H20: damaged metadata (random bytes over the metadata clusters) gives a report or a typed error, and repair all ends', async () => {
    const image = await sampleImage();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: 12 * CS - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 12 }),
        async (edits) => {
          const bytes = image.slice();
          for (const [at, value] of edits) if (at >= 8) bytes[at] = value; // keep magic and version
          for (const repair of [undefined, 'all'] as const) {
            const file = new MemoryFile({ data: bytes.slice(), maxLength: 64 << 20 });
            try {
              const result = await checkQcow2(file, repair === undefined ? {} : { repair });
              expect(result['check-errors'] + result.corruptions + result.leaks).toBeGreaterThanOrEqual(0);
            } catch (error) {
              if (!BlockError.isInstance(error)) throw error;
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('after repair all, a second check finds no refcount problems in images damaged only in refcounts (property)', async () => {
    const image = await sampleImage();
    const view = new DataView(image.buffer);
    const refblock = Number(view.getBigUint64(Number(view.getBigUint64(48))));
    const clusters = image.length / CS;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: clusters + 3 }), fc.nat({ max: 4 })), { minLength: 1, maxLength: 8 }), async (edits) => {
        const bytes = image.slice();
        const v = new DataView(bytes.buffer);
        for (const [cluster, value] of edits) v.setUint16(refblock + 2 * cluster, value);
        const file = new MemoryFile({ data: bytes });
        const repaired = await checkQcow2(file, { repair: 'all' });
        expect({ corruptions: repaired.corruptions, leaks: repaired.leaks, errors: repaired['check-errors'] }).toEqual({ corruptions: 0, leaks: 0, errors: 0 });
        const again = await checkQcow2(file);
        expect({ corruptions: again.corruptions, leaks: again.leaks }).toEqual({ corruptions: 0, leaks: 0 });
        // The data is still there.
        const driver = await Qcow2Driver.open(file, { codecs: { deflate: createDeflateCodec() } });
        const read = new Uint8Array(CS);
        await driver.read(16 * CS, read);
        expect(read.every((b) => b === 9)).toBe(true);
        await driver.read(CS, read);
        expect(read.every((b) => b === 8)).toBe(true);
        await driver.close();
      }),
      { numRuns: 60 },
    );
  });
});
