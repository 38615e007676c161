import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryFile } from '../memory-file.js';
import { bitmapsExtension, checkBitmapRefcounts, MAX_BITMAPS, parseBitmapDirectory, type BitmapsExtension } from './check-bitmaps.js';
import { AUTOCLEAR_BITMAPS, EXT_BITMAPS } from './constants.js';
import { createQcow2 } from './create.js';
import { parseQcow2Header, type Qcow2Header } from './header.js';

const CS = 65536;

async function header(): Promise<Qcow2Header> {
  const file = new MemoryFile();
  await createQcow2(file, { size: 1 << 30, clusterSize: CS });
  return parseQcow2Header(file.snapshot().subarray(0, CS));
}

function extension(nbBitmaps: number, directorySize: bigint, directoryOffset: bigint, reserved = 0): Uint8Array {
  const data = new Uint8Array(24);
  const v = new DataView(data.buffer);
  v.setUint32(0, nbBitmaps);
  v.setUint32(4, reserved);
  v.setBigUint64(8, directorySize);
  v.setBigUint64(16, directoryOffset);
  return data;
}

interface Entry {
  tableOffset: number;
  tableSize: number;
  flags: number;
  type: number;
  granularityBits: number;
  name: string;
}

/** A bitmap directory in the spec's layout (entries 8-byte aligned). */
function directory(entries: readonly Entry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const bytes = new Uint8Array(Math.ceil((24 + name.length) / 8) * 8);
    const v = new DataView(bytes.buffer);
    v.setBigUint64(0, BigInt(e.tableOffset));
    v.setUint32(8, e.tableSize);
    v.setUint32(12, e.flags);
    v.setUint8(16, e.type);
    v.setUint8(17, e.granularityBits);
    v.setUint16(18, name.length);
    bytes.set(name, 24);
    parts.push(bytes);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const good = (name: string, tableOffset = 5 * CS): Entry => ({ tableOffset, tableSize: 1, flags: 2, type: 1, granularityBits: 16, name });

describe('bitmaps extension (qcow2 spec "Bitmaps extension")', () => {
  it('is used only while autoclear bit 0 is set; QEMU open refusals are CORRUPT_IMAGE', async () => {
    const h = await header();
    expect(bitmapsExtension(h)).toBeUndefined();
    h.extensions.push({ type: EXT_BITMAPS, data: extension(2, 64n, BigInt(3 * CS)) });
    expect(bitmapsExtension(h)).toBeUndefined(); // autoclear bit clear: stale, ignored
    h.autoclearFeatures |= AUTOCLEAR_BITMAPS;
    expect(bitmapsExtension(h)).toEqual({ nbBitmaps: 2, directorySize: 64, directoryOffset: 3 * CS });
    const refuse = (data: Uint8Array, message: RegExp): void => {
      h.extensions[h.extensions.length - 1] = { type: EXT_BITMAPS, data };
      expect(() => bitmapsExtension(h)).toThrow(message);
    };
    refuse(extension(0, 64n, BigInt(3 * CS)), /zero bitmaps/);
    refuse(extension(MAX_BITMAPS + 1, 64n, BigInt(3 * CS)), /exceeding the QEMU supported maximum of 65535/);
    refuse(extension(1, 64n, BigInt(3 * CS + 512)), /invalid bitmap directory offset/);
    refuse(extension(1, 2n ** 40n, BigInt(3 * CS)), /exceeds the maximum supported size/);
    refuse(extension(1, 64n, BigInt(3 * CS), 7), /Reserved field is not zero/);
    refuse(new Uint8Array(16), /Invalid extension length/);
  });
});

describe('bitmap directory (qcow2 spec "Bitmap directory")', () => {
  const ext = (nbBitmaps: number, size: number): BitmapsExtension => ({ nbBitmaps, directorySize: size, directoryOffset: 3 * CS });

  it('parses entries and refuses what QEMU refuses, naming the reason', () => {
    const dir = directory([good('a'), good('longer-name', 6 * CS)]);
    expect(parseBitmapDirectory(dir, ext(2, dir.length), CS, 10 * CS)).toMatchObject([
      { name: 'a', tableOffset: 5 * CS, tableSize: 1 },
      { name: 'longer-name', tableOffset: 6 * CS },
    ]);
    expect(parseBitmapDirectory(dir, ext(1, dir.length), CS, 10 * CS)).toBe('More bitmaps found than specified in header extension');
    expect(parseBitmapDirectory(dir, ext(3, dir.length), CS, 10 * CS)).toBe('Less bitmaps found than specified in header extension');
    expect(parseBitmapDirectory(dir.subarray(0, dir.length - 8), ext(2, dir.length - 8), CS, 10 * CS)).toBe('Broken bitmap directory');
    expect(parseBitmapDirectory(new Uint8Array(0), ext(1, 0), CS, CS)).toBe('Requested bitmap directory size is zero');
    const bad = (patch: Partial<Entry>): unknown => {
      const d = directory([{ ...good('x'), ...patch }]);
      return parseBitmapDirectory(d, ext(1, d.length), CS, 10 * CS);
    };
    for (const patch of [{ type: 2 }, { tableSize: 0 }, { tableOffset: 0 }, { tableOffset: 5 * CS + 512 }, { granularityBits: 8 }, { granularityBits: 32 }, { flags: 4 }]) {
      expect(bad(patch)).toBe("Bitmap 'x' doesn't satisfy the constraints");
    }
    // A consistent (not in-use) bitmap must cover the whole file: 1 table entry covers CS*8 granules.
    expect(parseBitmapDirectory(directory([{ ...good('small'), granularityBits: 9 }]), ext(1, 32), CS, 2 ** 40)).toBe("Bitmap 'small' doesn't satisfy the constraints");
    expect(parseBitmapDirectory(directory([{ ...good('small'), granularityBits: 9, flags: 1 }]), ext(1, 32), CS, 2 ** 40)).toMatchObject([{ name: 'small' }]);
  });

  it('H20: arbitrary directory bytes give entries or a reason, never a throw (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 1, max: 8 }), (bytes, n) => {
        const r = parseBitmapDirectory(bytes, ext(n, bytes.length), CS, 10 * CS);
        expect(typeof r === 'string' || (Array.isArray(r) && r.length === n)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('counts the directory, each table and each data cluster once; a bad table entry fails the check', async () => {
    const file = new MemoryFile({ data: new Uint8Array(10 * CS) });
    const dir = directory([{ ...good('a'), tableSize: 3 }]);
    await file.write(3 * CS, dir);
    const table = new Uint8Array(24);
    const v = new DataView(table.buffer);
    v.setBigUint64(0, BigInt(7 * CS));
    v.setBigUint64(8, 1n); // all ones, no cluster
    v.setBigUint64(16, BigInt(8 * CS));
    await file.write(5 * CS, table);
    const counted: [number, number][] = [];
    let corruptions = 0;
    const host = { file, clusterSize: CS, inc: (o: number, s: number) => void counted.push([o, s]), corruption: () => void corruptions++ };
    await checkBitmapRefcounts(host, { nbBitmaps: 1, directorySize: dir.length, directoryOffset: 3 * CS });
    expect(counted).toEqual([
      [3 * CS, dir.length],
      [5 * CS, 24],
      [7 * CS, CS],
      [8 * CS, CS],
    ]);
    expect(corruptions).toBe(0);
    v.setBigUint64(16, BigInt(8 * CS) | 1n); // "all ones" with an offset: reserved
    await file.write(5 * CS, table);
    await expect(checkBitmapRefcounts(host, { nbBitmaps: 1, directorySize: dir.length, directoryOffset: 3 * CS })).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    expect(corruptions).toBe(1);
  });
});
