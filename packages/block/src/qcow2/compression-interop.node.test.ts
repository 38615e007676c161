import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { createNodeDeflateCodec } from '../node/codec-node.js';
import { qemuImgOk, qemuImgSkipReason, tempDir } from '../testing/node-qemu-img.js';
import type { Qcow2Codec } from './codec.js';
import { createDeflateCodec } from './compression-deflate.js';
import { createZstdCodec } from './compression-zstd.js';
import { MemoryFile } from '../memory-file.js';
import { createQcow2 } from './create.js';
import { Qcow2Driver } from './qcow2-driver.js';

/** Fast byte equality (vitest's deep toEqual is slow on large typed arrays); says where they differ. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) expect(`byte ${i}: ${actual[i]}`).toBe(`byte ${i}: ${expected[i]}`);
  }
}


/**
 * Interop with qemu-img: clusters QEMU compressed read back with our codecs, and images whose
 * clusters our codecs compressed read back (and check clean) with qemu-img.
 */
const skip = qemuImgSkipReason();
const CLUSTER = 65536;
const CLUSTER_BITS = 16;
const SIZE = 48 * CLUSTER;

/** Guest data: per cluster zeroes, text-like runs, noise (stored uncompressed) or a mix. */
function guestData(seed: number): Uint8Array {
  const data = new Uint8Array(SIZE);
  let x = seed >>> 0 || 1;
  const rnd = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  for (let c = 0; c < SIZE / CLUSTER; c++) {
    const kind = c % 4;
    const base = c * CLUSTER;
    if (kind === 0) continue;
    for (let i = 0; i < CLUSTER; i++) {
      if (kind === 1) data[base + i] = 'the quick brown fox jumps over the lazy dog '.charCodeAt((i + c) % 44);
      else if (kind === 2) data[base + i] = rnd() & 0xff;
      else data[base + i] = (i >> 9) % 3 === 0 ? rnd() & 0xff : (i * c) & 0x0f;
    }
  }
  return data;
}

const be64 = (b: Uint8Array, at: number) => {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
};

/** Every compressed cluster of a qemu-img image: guest offset and its stored bytes. */
function compressedClusters(image: Uint8Array): { guest: number; stored: Uint8Array }[] {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  expect(v.getUint32(20)).toBe(CLUSTER_BITS);
  const l1Size = v.getUint32(36);
  const l1Offset = be64(image, 40);
  const x = 62 - (CLUSTER_BITS - 8); // qcow2.txt: compressed cluster descriptor split
  const out: { guest: number; stored: Uint8Array }[] = [];
  for (let i = 0; i < l1Size; i++) {
    const l2Offset = be64(image, l1Offset + 8 * i) % 2 ** 56 & ~0x1ff;
    if (l2Offset === 0) continue;
    for (let j = 0; j < CLUSTER / 8; j++) {
      const hi = v.getUint32(l2Offset + 8 * j);
      const lo = v.getUint32(l2Offset + 8 * j + 4);
      if ((hi & 0x40000000) === 0) continue;
      const entry = BigInt(hi) * 2n ** 32n + BigInt(lo);
      const offset = Number(entry & ((1n << BigInt(x)) - 1n));
      const sectors = Number((entry >> BigInt(x)) & ((1n << BigInt(62 - x)) - 1n)) + 1;
      const length = sectors * 512 - (offset & 511);
      out.push({ guest: (i * (CLUSTER / 8) + j) * CLUSTER, stored: image.subarray(offset, Math.min(offset + length, image.length)) });
    }
  }
  return out;
}

/**
 * Builds a qcow2 v3 image (cluster 64 KiB, refcount_bits 16) whose clusters are compressed by
 * `codec`, each stored from a sector boundary; clusters the codec cannot shrink are stored
 * plainly, zero clusters are left unallocated.
 */
function buildCompressedImage(data: Uint8Array, codec: Qcow2Codec): Uint8Array {
  const clusters = data.length / CLUSTER;
  const payload: { guest: number; bytes: Uint8Array; compressed: boolean }[] = [];
  for (let c = 0; c < clusters; c++) {
    const cluster = data.subarray(c * CLUSTER, (c + 1) * CLUSTER);
    if (cluster.every((b) => b === 0)) continue;
    const stored = codec.compress(cluster);
    payload.push({ guest: c, bytes: stored ?? cluster, compressed: stored !== null });
  }
  // Layout: 0 header, 1 refcount table, 2 refcount block, 3 L1, 4 L2, then data.
  const l2: bigint[] = new Array<bigint>(CLUSTER / 8).fill(0n);
  let at = 5 * CLUSTER;
  const placed: { offset: number; bytes: Uint8Array }[] = [];
  const refcounts = new Map<number, number>();
  const ref = (from: number, length: number) => {
    for (let c = Math.floor(from / CLUSTER); c <= Math.floor((from + length - 1) / CLUSTER); c++) refcounts.set(c, (refcounts.get(c) ?? 0) + 1);
  };
  for (let c = 0; c < 5; c++) ref(c * CLUSTER, CLUSTER);
  // Plain clusters first (cluster aligned), compressed ones packed after them.
  for (const p of payload.filter((q) => !q.compressed)) {
    placed.push({ offset: at, bytes: p.bytes });
    l2[p.guest] = (1n << 63n) | BigInt(at); // QCOW_OFLAG_COPIED: refcount is 1
    ref(at, CLUSTER);
    at += CLUSTER;
  }
  const x = BigInt(62 - (CLUSTER_BITS - 8));
  for (const p of payload.filter((q) => q.compressed)) {
    const sectors = Math.ceil(p.bytes.length / 512);
    placed.push({ offset: at, bytes: p.bytes });
    l2[p.guest] = (1n << 62n) | (BigInt(sectors - 1) << x) | BigInt(at);
    ref(at, sectors * 512);
    at += sectors * 512;
  }
  const end = Math.ceil(at / CLUSTER) * CLUSTER;
  const image = new Uint8Array(end);
  const v = new DataView(image.buffer);
  // Header (qcow2.txt): version 3, header_length 112 with compression_type.
  v.setUint32(0, 0x514649fb);
  v.setUint32(4, 3);
  v.setUint32(20, CLUSTER_BITS);
  v.setBigUint64(24, BigInt(data.length));
  v.setUint32(36, 1); // l1_size
  v.setBigUint64(40, BigInt(3 * CLUSTER));
  v.setBigUint64(48, BigInt(CLUSTER));
  v.setUint32(56, 1); // refcount_table_clusters
  v.setBigUint64(72, codec.type === 'zstd' ? 1n << 3n : 0n); // incompatible: compression type
  v.setUint32(96, 4); // refcount_order: 16 bits
  v.setUint32(100, 112);
  image[104] = codec.type === 'zstd' ? 1 : 0;
  v.setBigUint64(CLUSTER, BigInt(2 * CLUSTER)); // refcount table → block
  for (const [cluster, count] of refcounts) v.setUint16(2 * CLUSTER + 2 * cluster, count);
  v.setBigUint64(3 * CLUSTER, (1n << 63n) | BigInt(4 * CLUSTER)); // L1 → L2, COPIED
  l2.forEach((e, i) => v.setBigUint64(4 * CLUSTER + 8 * i, e));
  for (const p of placed) image.set(p.bytes, p.offset);
  return image;
}

describe.skipIf(skip !== undefined)('qcow2 compressed clusters vs qemu-img', () => {
  const tmp = tempDir('virtio-ts-compress-');
  let zstd: Qcow2Codec;
  beforeAll(async () => {
    zstd = await createZstdCodec();
  });
  afterAll(() => { if (process.env.KEEP_TMP === undefined) tmp.remove(); else console.log(tmp.dir); });

  for (const type of ['zlib', 'zstd'] as const) {
    it(`reads every cluster qemu-img compressed with compression_type=${type}`, () => {
      const data = guestData(type === 'zlib' ? 1 : 2);
      writeFileSync(tmp.path(`${type}.raw`), data);
      qemuImgOk(['convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type},cluster_size=${CLUSTER}`, tmp.path(`${type}.raw`), tmp.path(`${type}.qcow2`)]);
      const image = new Uint8Array(readFileSync(tmp.path(`${type}.qcow2`)));
      const found = compressedClusters(image);
      expect(found.length).toBeGreaterThanOrEqual(SIZE / CLUSTER / 2 - 1);
      const codecs = type === 'zlib' ? [createDeflateCodec(), createNodeDeflateCodec()] : [zstd];
      for (const codec of codecs) {
        for (const { guest, stored } of found) {
          expectBytes(codec.decompress(stored, CLUSTER), data.subarray(guest, guest + CLUSTER));
        }
      }
    });
  }

  for (const [name, pick] of [
    ['pako deflate', () => createDeflateCodec()],
    ['node:zlib deflate', () => createNodeDeflateCodec()],
    ['zstd', () => zstd],
  ] as const) {
    it(`qemu-img reads back, and checks clean, an image compressed with ${name}`, () => {
      const codec = pick();
      const data = guestData(name.length);
      const image = buildCompressedImage(data, codec);
      const file = tmp.path(`ours-${codec.type}-${name.length}.qcow2`);
      writeFileSync(file, image);
      const check = JSON.parse(qemuImgOk(['check', '--output=json', file])) as Record<string, unknown>;
      expect(check['compressed-clusters']).toBeGreaterThan(0);
      expect(check).not.toHaveProperty('corruptions');
      expect(check).not.toHaveProperty('leaks');
      qemuImgOk(['convert', '-f', 'qcow2', '-O', 'raw', file, `${file}.raw`]);
      expectBytes(new Uint8Array(readFileSync(`${file}.raw`)), data);
    });
  }

  for (const type of ['deflate', 'zstd'] as const) {
    it(`the engine's writeCompressed with our ${type} codec makes images qemu-img reads and checks clean`, async () => {
      const data = guestData(type.length);
      const file = new MemoryFile();
      await createQcow2(file, { size: SIZE, clusterSize: CLUSTER, compressionType: type });
      const codec = type === 'zstd' ? zstd : createNodeDeflateCodec();
      const driver = await Qcow2Driver.open(file, { codecs: { [type]: codec } });
      for (let c = 0; c < SIZE / CLUSTER; c++) await driver.writeCompressed(c * CLUSTER, data.subarray(c * CLUSTER, (c + 1) * CLUSTER));
      await driver.close();
      const path = tmp.path(`engine-${type}.qcow2`);
      writeFileSync(path, file.snapshot());
      const check = JSON.parse(qemuImgOk(['check', '--output=json', path])) as Record<string, unknown>;
      expect(check['compressed-clusters']).toBeGreaterThan(0);
      expect(check).not.toHaveProperty('corruptions');
      expect(check).not.toHaveProperty('leaks');
      qemuImgOk(['convert', '-f', 'qcow2', '-O', 'raw', path, `${path}.raw`]);
      expectBytes(new Uint8Array(readFileSync(`${path}.raw`)), data);
    });
  }
});
