/**
 * Hostile images (HOSTILE-INPUTS.md H18-H20): fuzzed and hand-made corrupt images end in a typed
 * BlockError or a valid open, never a crash, a hang or an unbounded allocation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockError } from '../errors.js';
import { MemoryFile } from '../memory-file.js';
import { encodeFeatureNameTable } from './header.js';
import { createQcow2 } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';
import { testCodec } from './test-codec.js';

const codecs = { deflate: testCodec('deflate'), zstd: testCodec('zstd') };

async function validImage(): Promise<Uint8Array> {
  const file = new MemoryFile();
  await createQcow2(file, { size: 256 * 1024, clusterSize: 4096 });
  const disk = await Qcow2Driver.open(file, { codecs });
  await disk.write(0, new Uint8Array(20000).fill(5));
  await disk.writeCompressed(65536, new Uint8Array(4096).fill(9));
  await disk.writeZeroes(131072, 8192);
  await disk.close();
  return file.snapshot();
}

/** Opens, reads everything, writes a little; returns 'ok' or the BlockError code. Rethrows anything else. */
async function exercise(bytes: Uint8Array): Promise<string> {
  const file = new MemoryFile({ data: bytes, maxLength: 64 << 20 });
  try {
    const disk = await Qcow2Driver.open(file, { codecs, ignoreBacking: true });
    const size = Math.min(disk.length, 1 << 20);
    await disk.read(0, new Uint8Array(size));
    if (size >= 8192) {
      await disk.write(4096, new Uint8Array(3000).fill(1));
      await disk.writeZeroes(0, 4096);
    }
    await disk.close();
    return 'ok';
  } catch (error) {
    if (BlockError.isInstance(error)) return error.code;
    throw error;
  }
}

function mutate(base: Uint8Array, flips: [number, number][]): Uint8Array {
  const out = base.slice();
  for (const [pos, value] of flips) out[pos % out.length] = value;
  return out;
}

describe('hostile qcow2 images', () => {
  it('fuzz: random bytes with a qcow2 magic give a typed error or a valid open', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 8192 }), async (bytes) => {
        const withMagic = bytes.slice();
        withMagic.set([0x51, 0x46, 0x49, 0xfb].slice(0, withMagic.length));
        expect(typeof (await exercise(withMagic))).toBe('string');
      }),
      { numRuns: 150 },
    );
  });

  it('fuzz: mutated headers and tables of a valid image give a typed error or a valid open', async () => {
    const base = await validImage();
    // Most mutations in the header (first 112 bytes) and the metadata clusters that follow.
    const position = fc.oneof(fc.nat(111), fc.nat(6 * 4096 - 1), fc.nat(base.length - 1));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(position, fc.nat(255)), { minLength: 1, maxLength: 6 }), async (flips) => {
        expect(typeof (await exercise(mutate(base, flips)))).toBe('string');
      }),
      { numRuns: 250 },
    );
  });

  it('regression-style cases: absurd sizes and misplaced tables are refused with the right code', async () => {
    const base = await validImage();
    const set = (_field: number, write: (v: DataView) => void): Uint8Array => {
      const out = base.slice();
      write(new DataView(out.buffer));
      return out;
    };
    // l1_size of 2^32 - 1 (would be a 32 GiB table): refused before any allocation.
    expect(await exercise(set(36, (v) => v.setUint32(36, 0xffffffff)))).toBe('INVALID_FORMAT');
    // refcount_table_clusters huge.
    expect(await exercise(set(56, (v) => v.setUint32(56, 0xffffffff)))).toBe('INVALID_FORMAT');
    // refcount table overlapping the header.
    expect(await exercise(set(48, (v) => v.setBigUint64(48, 0n)))).toBe('CORRUPT_IMAGE');
    // L1 table unaligned and past the end of the file.
    expect(await exercise(set(40, (v) => v.setBigUint64(40, 4097n)))).toBe('CORRUPT_IMAGE');
    expect(await exercise(set(40, (v) => v.setBigUint64(40, 1n << 40n)))).toBe('CORRUPT_IMAGE');
    // nb_snapshots above QEMU's limit.
    expect(await exercise(set(60, (v) => v.setUint32(60, 0xffffffff)))).toBe('INVALID_FORMAT');
    // header_length larger than the cluster.
    expect(await exercise(set(100, (v) => v.setUint32(100, 0xfffffff8)))).toBe('INVALID_FORMAT');
    // backing file name longer than 1023 bytes.
    expect(
      await exercise(
        set(8, (v) => {
          v.setBigUint64(8, 512n);
          v.setUint32(16, 3000);
        }),
      ),
    ).toBe('INVALID_FORMAT');
    // cluster_bits 30 (1 GiB clusters).
    expect(await exercise(set(20, (v) => v.setUint32(20, 30)))).toBe('INVALID_FORMAT');
    // virtual size far larger than the L1 table covers.
    expect(await exercise(set(24, (v) => v.setBigUint64(24, 1n << 52n)))).toBe('CORRUPT_IMAGE');
  });

  it('spec: "An implementation must fail to open an image if an unknown bit is set" (named from the feature table)', async () => {
    const base = await validImage();
    const out = base.slice();
    new DataView(out.buffer).setBigUint64(72, 1n << 9n);
    await expect(Qcow2Driver.open(new MemoryFile({ data: out }))).rejects.toThrow(/incompatible features: bit 9/);
    // With a feature name table naming bit 9, the message names it.
    const named = new Uint8Array(out);
    const table = encodeFeatureNameTable([{ type: 0, bit: 9, name: 'teleportation' }]);
    const view = new DataView(named.buffer);
    const at = view.getUint32(100); // header_length: our images put the feature table first
    view.setUint32(at, table.type);
    view.setUint32(at + 4, table.data.length);
    named.set(table.data, at + 8);
    named.fill(0, at + 8 + table.data.length, at + 16 + table.data.length);
    await expect(Qcow2Driver.open(new MemoryFile({ data: named }))).rejects.toThrow(/teleportation \(bit 9\)/);
  });

  it('refuses encryption, external data files and unknown compression types, naming the feature', async () => {
    const base = await validImage();
    const edit = (f: (v: DataView) => void): MemoryFile => {
      const out = base.slice();
      f(new DataView(out.buffer));
      return new MemoryFile({ data: out });
    };
    await expect(Qcow2Driver.open(edit((v) => v.setUint32(32, 2)))).rejects.toThrow(/encryption/);
    await expect(Qcow2Driver.open(edit((v) => v.setBigUint64(72, 1n << 2n)))).rejects.toThrow(/external data file/);
    await expect(
      Qcow2Driver.open(
        edit((v) => {
          v.setBigUint64(72, 1n << 3n);
          v.setUint8(104, 7);
        }),
      ),
    ).rejects.toThrow(/compression type 7/);
  });

  it('spec: corrupt bit: "the image must not be written to": writable open refused, read-only allowed', async () => {
    const out = (await validImage()).slice();
    new DataView(out.buffer).setBigUint64(72, 1n << 1n);
    await expect(Qcow2Driver.open(new MemoryFile({ data: out }))).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    const disk = await Qcow2Driver.open(new MemoryFile({ data: out }), { readOnly: true, codecs });
    const data = new Uint8Array(100);
    await disk.read(0, data);
    expect(data.every((b) => b === 5)).toBe(true);
  });

  it('an L2 entry pointing at a refcount block: the write is refused and the corrupt bit set (QEMU overlap check)', async () => {
    const out = (await validImage()).slice();
    const view = new DataView(out.buffer);
    const l1 = Number(view.getBigUint64(40));
    const l2 = Number(view.getBigUint64(l1) & 0x00fffffffffffe00n);
    view.setBigUint64(l2, (1n << 63n) | 4096n * 2n); // cluster 2: the refcount block
    const file = new MemoryFile({ data: out });
    const disk = await Qcow2Driver.open(file, { codecs });
    // Load the refcount block into the cache via an allocation elsewhere, then write cluster 0.
    await disk.write(200000, new Uint8Array(10).fill(1));
    await expect(disk.write(0, new Uint8Array(10))).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    await new Promise((r) => setTimeout(r, 10));
    expect(new DataView(file.snapshot().buffer).getBigUint64(72) & 2n).toBe(2n);
  });

  it('a compressed cluster whose stream is garbage is CORRUPT_IMAGE, never a crash', async () => {
    const file = new MemoryFile();
    await createQcow2(file, { size: 65536, clusterSize: 4096 });
    const disk = await Qcow2Driver.open(file, { codecs });
    await disk.writeCompressed(0, new Uint8Array(4096).fill(3));
    await disk.close();
    const bytes = file.snapshot();
    // Find the compressed data: the last cluster; overwrite with a bad run length.
    bytes.fill(0, bytes.length - 4096);
    const reopened = await Qcow2Driver.open(new MemoryFile({ data: bytes }), { codecs, readOnly: true });
    await expect(reopened.read(0, new Uint8Array(4096))).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    const noCodec = await Qcow2Driver.open(new MemoryFile({ data: bytes }), { readOnly: true });
    await expect(noCodec.read(0, new Uint8Array(4096))).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});
