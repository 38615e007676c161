import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryFile } from './memory-file.js';
import { RawDriver, createRaw } from './raw/raw-driver.js';
import { RwLock } from './rw-lock.js';

describe('MemoryFile', () => {
  it('behaves as a byte array that grows on write and reads zeroes past the end', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(20000), fc.uint8Array({ minLength: 1, maxLength: 3000 })), { maxLength: 20 }), async (writes) => {
        const file = new MemoryFile();
        let model = new Uint8Array(0);
        for (const [offset, data] of writes) {
          await file.write(offset, data);
          if (offset + data.length > model.length) {
            const grown = new Uint8Array(offset + data.length);
            grown.set(model);
            model = grown;
          }
          model.set(data, offset);
        }
        expect(file.length).toBe(model.length);
        const out = new Uint8Array(model.length + 100).fill(7);
        await file.read(0, out);
        expect(Buffer.compare(out.subarray(0, model.length), model)).toBe(0);
        expect(out.subarray(model.length).every((b) => b === 0)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('refuses growth past maxLength with NO_SPACE', async () => {
    const file = new MemoryFile({ maxLength: 100 });
    await expect(file.write(90, new Uint8Array(20))).rejects.toMatchObject({ code: 'NO_SPACE' });
  });
});

describe('RawDriver', () => {
  it('is the file, byte for byte; zeroes and bounds are enforced', async () => {
    const file = new MemoryFile();
    await createRaw(file, { size: 8192, preallocation: 'full' });
    const disk = RawDriver.open(file);
    await disk.write(100, new Uint8Array(10).fill(3));
    await disk.writeZeroes(104, 2);
    const out = new Uint8Array(10);
    await disk.read(100, out);
    expect([...out]).toEqual([3, 3, 3, 3, 0, 0, 3, 3, 3, 3]);
    await expect(disk.read(8190, new Uint8Array(4))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await disk.resize(16384);
    expect(disk.length).toBe(16384);
    expect((await disk.info()).format).toBe('raw');
    const ro = RawDriver.open(new MemoryFile({ data: new Uint8Array(512) }), { readOnly: true });
    await expect(ro.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: 'READ_ONLY' });
  });
});

describe('RwLock', () => {
  it('shared holders overlap; an exclusive holder runs alone; a queued writer blocks later readers', async () => {
    const lock = new RwLock();
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r1 = lock.shared(async () => {
      events.push('r1 start');
      await gate;
      events.push('r1 end');
    });
    const w = lock.exclusive(async () => {
      events.push('w');
    });
    const r2 = lock.shared(async () => {
      events.push('r2');
    });
    await Promise.resolve();
    expect(events).toEqual(['r1 start']);
    release();
    await Promise.all([r1, w, r2]);
    expect(events).toEqual(['r1 start', 'r1 end', 'w', 'r2']);
    expect(lock.idle).toBe(true);
  });
});
