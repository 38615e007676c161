import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXT_BITMAPS } from './constants.js';
import { backingFormatOf, featureNamesOf, parseQcow2Header, serializeQcow2Header, setBackingFormat, type Qcow2Header } from './header.js';

const headerArb: fc.Arbitrary<Qcow2Header> = fc
  .record({
    version: fc.constantFrom(2 as const, 3 as const),
    clusterBits: fc.integer({ min: 10, max: 12 }),
    size: fc.nat({ max: 2 ** 50 }),
    l1Size: fc.nat({ max: 1 << 20 }),
    l1TableOffset: fc.nat({ max: 2 ** 40 }),
    refcountTableOffset: fc.nat({ max: 2 ** 40 }),
    refcountTableClusters: fc.nat({ max: 1024 }),
    nbSnapshots: fc.nat({ max: 1000 }),
    snapshotsOffset: fc.nat({ max: 2 ** 40 }),
    incompatibleFeatures: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    compatibleFeatures: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    autoclearFeatures: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    refcountOrder: fc.integer({ min: 0, max: 6 }),
    extraFields: fc.nat({ max: 4 }),
    compressionType: fc.nat({ max: 255 }),
    extensions: fc.array(
      fc.record({ type: fc.integer({ min: 1, max: 0xffffffff }), data: fc.uint8Array({ maxLength: 60 }) }),
      { maxLength: 5 },
    ),
    backingFile: fc.option(fc.string({ minLength: 1, maxLength: 100 }), { nil: undefined }),
  })
  .map((r) => {
    const v3 = r.version === 3;
    const headerLength = v3 ? 104 + r.extraFields * 8 : 72;
    return {
      version: r.version,
      backingFileOffset: 0,
      backingFileSize: 0,
      clusterBits: r.clusterBits,
      size: r.size,
      cryptMethod: 0,
      l1Size: r.l1Size,
      l1TableOffset: r.l1TableOffset,
      refcountTableOffset: r.refcountTableOffset,
      refcountTableClusters: r.refcountTableClusters,
      nbSnapshots: r.nbSnapshots,
      snapshotsOffset: r.snapshotsOffset,
      incompatibleFeatures: v3 ? r.incompatibleFeatures : 0n,
      compatibleFeatures: v3 ? r.compatibleFeatures : 0n,
      autoclearFeatures: v3 ? r.autoclearFeatures : 0n,
      refcountOrder: v3 ? r.refcountOrder : 4,
      headerLength,
      compressionType: headerLength > 104 ? r.compressionType : 0,
      additionalFields: new Uint8Array(Math.max(0, headerLength - 105)),
      extensions: r.extensions,
      backingFile: r.backingFile,
    } satisfies Qcow2Header;
  });

describe('qcow2 header codec', () => {
  it('round-trips every field, unknown extensions and the backing file name', () => {
    fc.assert(
      fc.property(headerArb, (header) => {
        const bytes = serializeQcow2Header(header);
        const parsed = parseQcow2Header(bytes);
        expect(parsed).toEqual(header);
        expect(Buffer.compare(serializeQcow2Header(parsed), bytes)).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('keeps the bitmaps extension bytes intact and sets the backing format extension', () => {
    const header = fc.sample(headerArb, { numRuns: 1, seed: 7 })[0]!;
    header.version = 3;
    header.headerLength = 104;
    header.additionalFields = new Uint8Array(0);
    header.compressionType = 0;
    header.extensions = [{ type: EXT_BITMAPS, data: Uint8Array.from({ length: 24 }, (_, i) => i) }];
    setBackingFormat(header, 'qcow2');
    header.backingFile = 'base.qcow2';
    const parsed = parseQcow2Header(serializeQcow2Header(header));
    expect(backingFormatOf(parsed)).toBe('qcow2');
    expect(parsed.extensions.find((e) => e.type === EXT_BITMAPS)?.data).toEqual(header.extensions[1]!.data);
    expect(featureNamesOf(parsed)).toEqual([]);
  });

  it('spec: "backing_file_size ... Must not be longer than 1023 bytes"', () => {
    const header = fc.sample(headerArb, { numRuns: 1, seed: 3 })[0]!;
    header.backingFile = 'x'.repeat(1024);
    expect(() => serializeQcow2Header(header)).toThrow(/longer than 1023/);
  });

  it('spec: "refcount_order ... may not exceed 6" and header_length must be at least 104', () => {
    const header = fc.sample(headerArb, { numRuns: 1, seed: 5 })[0]!;
    header.version = 3;
    header.headerLength = 104;
    header.additionalFields = new Uint8Array(0);
    const bytes = serializeQcow2Header(header);
    const view = new DataView(bytes.buffer);
    view.setUint32(96, 7);
    expect(() => parseQcow2Header(bytes)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    view.setUint32(96, 4);
    view.setUint32(100, 96);
    expect(() => parseQcow2Header(bytes)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
  });
});
