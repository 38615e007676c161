import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BlockError } from '../errors.js';
import { MemoryFile } from '../memory-file.js';
import { checkQcow2 } from './check.js';
import { createQcow2 } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { applySnapshot, createSnapshot, deleteSnapshot, listSnapshots } from './snapshot.js';

/**
 * Snapshots against a model: random writes, snapshot creations, reverts and deletions on a small
 * image (512-byte clusters, so the active L1 has many L2 tables to share and copy), with our own
 * check clean after every step and every snapshot reading back what the model kept.
 */
const CS = 512;
const CLUSTERS = 256; // 128 KiB: 4 L2 tables of 64 entries
const SIZE = CS * CLUSTERS;

type Op =
  | { kind: 'write'; cluster: number; count: number; byte: number }
  | { kind: 'create' }
  | { kind: 'apply'; pick: number }
  | { kind: 'delete'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), cluster: fc.nat({ max: CLUSTERS - 1 }), count: fc.integer({ min: 1, max: 80 }), byte: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'create' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('apply' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
);

async function expectClean(file: MemoryFile, driver: Qcow2Driver, step: string): Promise<void> {
  // Twice: the engine applies deferred refcount decreases at a flush and writes them at the next.
  await driver.flush();
  await driver.flush();
  const result = await checkQcow2(file);
  expect({ step, corruptions: result.corruptions, leaks: result.leaks, checkErrors: result['check-errors'], messages: result.messages.slice(0, 3) }).toEqual({
    step,
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
    messages: [],
  });
}

async function expectContent(driver: Qcow2Driver, model: Uint8Array, step: string): Promise<void> {
  const disk = new Uint8Array(SIZE);
  await driver.read(0, disk);
  for (let c = 0; c < CLUSTERS; c++) {
    if (disk[c * CS] !== model[c] || disk[c * CS + CS - 1] !== model[c]) {
      expect(`${step}: cluster ${c} reads ${disk[c * CS]}`).toBe(`${step}: cluster ${c} reads ${model[c]}`);
    }
  }
}

describe('qcow2 internal snapshots (model-based, checked by checkQcow2)', () => {
  it('random writes, creates, applies and deletes keep the image consistent and every snapshot intact', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 20 }), async (ops) => {
        const file = new MemoryFile();
        await createQcow2(file, { size: SIZE, clusterSize: CS });
        const driver = await Qcow2Driver.open(file);
        const active = new Uint8Array(CLUSTERS); // one byte per cluster: the fill value
        const kept: { id: string; content: Uint8Array }[] = [];
        for (const [n, op] of ops.entries()) {
          const step = `${n}:${op.kind}`;
          if (op.kind === 'write') {
            const count = Math.min(op.count, CLUSTERS - op.cluster);
            await driver.write(op.cluster * CS, new Uint8Array(count * CS).fill(op.byte));
            active.fill(op.byte, op.cluster, op.cluster + count);
          } else if (op.kind === 'create') {
            const snapshot = await createSnapshot(driver, { name: `s${n}` });
            kept.push({ id: snapshot.id, content: active.slice() });
          } else if (kept.length > 0) {
            const index = op.pick % kept.length;
            const target = kept[index]!;
            if (op.kind === 'apply') {
              await applySnapshot(driver, target.id);
              active.set(target.content);
            } else {
              await deleteSnapshot(driver, target.id);
              kept.splice(index, 1);
            }
          }
          await expectClean(file, driver, step);
          await expectContent(driver, active, step);
        }
        expect((await listSnapshots(driver)).map((s) => s.id)).toEqual(kept.map((k) => k.id));
        // Every remaining snapshot still holds what it held when it was taken.
        for (const k of kept) {
          await applySnapshot(driver, k.id);
          await expectContent(driver, k.content, `apply ${k.id}`);
        }
        await expectClean(file, driver, 'end');
        await driver.close();
      }),
      { numRuns: 30 },
    );
  });

  it('a read-only image or a refcount width of 1 bit cannot take snapshots (typed errors)', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 1 << 20, refcountBits: 1 });
    const driver = await Qcow2Driver.open(file);
    await expect(createSnapshot(driver, { name: 'x' })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await driver.close();
  });

  it('H20: a snapshot table entry whose L1 table lies past the end of the file is refused, not followed', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 1 << 20 });
    const driver = await Qcow2Driver.open(file);
    await driver.write(0, new Uint8Array(65536).fill(3));
    await createSnapshot(driver, { name: 'a' });
    await driver.close();
    // Point the snapshot's L1 table far past the end of the file.
    const bytes = file.snapshot();
    const view = new DataView(bytes.buffer);
    const tableOffset = Number(view.getBigUint64(64));
    view.setBigUint64(tableOffset, 1n << 40n);
    const reopened = await Qcow2Driver.open(new MemoryFile({ data: bytes }));
    await expect(applySnapshot(reopened, 'a')).rejects.toSatisfy((e) => BlockError.isInstance(e) && e.code === 'CORRUPT_IMAGE');
    await reopened.close();
  });

  it('apply grows the active L1 table when the snapshot\'s is larger (new table written before the header points at it)', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 64 * 1024, clusterSize: CS }); // 2 L1 entries
    const driver = await Qcow2Driver.open(file);
    await driver.write(0, new Uint8Array(4 * CS).fill(5));
    const taken = await createSnapshot(driver, { name: 'wide' });
    await driver.write(0, new Uint8Array(CS).fill(6));
    await driver.close();
    // Widen the snapshot's L1 (its cluster holds 64 entries; the extra ones are zero).
    const bytes = file.snapshot();
    const view = new DataView(bytes.buffer);
    const table = Number(view.getBigUint64(64));
    expect(view.getUint32(table + 8)).toBe(taken.l1Size);
    view.setUint32(table + 8, 40);
    const grown = new MemoryFile({ data: bytes });
    const reopened = await Qcow2Driver.open(grown);
    await applySnapshot(reopened, 'wide');
    expect(reopened.image.l1Size).toBe(40);
    const read = new Uint8Array(4 * CS);
    await reopened.read(0, read);
    expect(read.every((b) => b === 5)).toBe(true);
    await reopened.close();
    expect(await checkQcow2(new MemoryFile({ data: grown.snapshot() }))).toMatchObject({ corruptions: 0, leaks: 0, 'check-errors': 0 });
  });
});
