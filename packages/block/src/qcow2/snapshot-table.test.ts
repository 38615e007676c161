import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BlockError } from '../errors.js';
import type { BlockFile } from '../block-driver.js';
import {
  MAX_SNAPSHOT_EXTRA_DATA,
  MAX_SNAPSHOT_TABLE_SIZE,
  MAX_SNAPSHOTS,
  parseSnapshotTable,
  readSnapshotTable,
  serializeSnapshotTable,
  snapshotTableSize,
  type Qcow2Snapshot,
} from './snapshot-table.js';

const snapshotArb: fc.Arbitrary<Qcow2Snapshot> = fc.record({
  l1TableOffset: fc.integer({ min: 0, max: 2 ** 40 }).map((n) => n * 512),
  l1Size: fc.integer({ min: 0, max: 2 ** 22 }),
  id: fc.string({ maxLength: 12 }),
  name: fc.string({ unit: 'grapheme', maxLength: 40 }),
  dateSec: fc.nat({ max: 0xffffffff }),
  dateNsec: fc.nat({ max: 999_999_999 }),
  vmClockNsec: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  vmStateSize: fc.oneof(fc.nat({ max: 0xffffffff }), fc.integer({ min: 2 ** 32, max: Number.MAX_SAFE_INTEGER })),
  diskSize: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  icount: fc.oneof(fc.constant(-1n), fc.bigInt({ min: 0n, max: (1n << 63n) - 1n })),
  extraDataSize: fc.constant(0),
  unknownExtraData: fc.uint8Array({ maxLength: 64 }),
});

/** A read-only BlockFile over bytes (reads past the end give zeroes, as the contract says). */
function bytesFile(data: Uint8Array): BlockFile {
  return {
    length: data.length,
    readOnly: true,
    read: async (offset, buffer) => {
      buffer.fill(0);
      buffer.set(data.subarray(offset, offset + buffer.length));
    },
    write: async () => undefined,
    flush: async () => undefined,
    truncate: async () => undefined,
    close: async () => undefined,
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return BlockError.isInstance(error) ? error.code : 'not a BlockError';
  }
}

describe('qcow2 snapshot table codec', () => {
  it('round-trips every field, unknown extra data included (property)', () => {
    fc.assert(
      fc.property(fc.array(snapshotArb, { maxLength: 8 }), (snapshots) => {
        const bytes = serializeSnapshotTable(snapshots);
        expect(bytes.length).toBe(snapshotTableSize(snapshots));
        const parsed = parseSnapshotTable(bytes, snapshots.length);
        expect(parsed.size).toBe(bytes.length);
        expect(parsed.snapshots).toEqual(snapshots.map((s) => ({ ...s, extraDataSize: 24 + s.unknownExtraData.length })));
      }),
      { numRuns: 200 },
    );
  });

  it('qcow2 spec: every entry starts on an 8-byte boundary; extra data, ID and name follow the 40-byte header', () => {
    fc.assert(
      fc.property(fc.array(snapshotArb, { minLength: 2, maxLength: 6 }), (snapshots) => {
        const bytes = serializeSnapshotTable(snapshots);
        const view = new DataView(bytes.buffer);
        let at = 0;
        for (const s of snapshots) {
          expect(at % 8).toBe(0);
          expect(Number(view.getBigUint64(at))).toBe(s.l1TableOffset);
          const extra = view.getUint32(at + 36);
          const idSize = view.getUint16(at + 12);
          const nameSize = view.getUint16(at + 14);
          expect(new TextDecoder().decode(bytes.subarray(at + 40 + extra, at + 40 + extra + idSize))).toBe(s.id);
          at = Math.ceil((at + 40 + extra + idSize + nameSize) / 8) * 8;
        }
      }),
      { numRuns: 50 },
    );
  });

  it('qcow2 spec: a VM state larger than 32 bits is stored as 0 in vm_state_size and in full in vm_state_size_large', () => {
    const s: Qcow2Snapshot = {
      l1TableOffset: 65536, l1Size: 1, id: '1', name: 'big', dateSec: 0, dateNsec: 0, vmClockNsec: 0n,
      vmStateSize: 2 ** 33, diskSize: 1 << 20, icount: -1n, extraDataSize: 0, unknownExtraData: new Uint8Array(0),
    };
    const bytes = serializeSnapshotTable([s]);
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(32)).toBe(0);
    expect(view.getBigUint64(40)).toBe(2n ** 33n);
    expect(view.getBigInt64(56)).toBe(-1n); // icount: -1 when not recorded
  });

  it('reads old entries: no extra data (v2: disk size defaults to the image size), 16 bytes (no icount)', () => {
    const entry = (extra: Uint8Array) => {
      const out = new Uint8Array(Math.ceil((40 + extra.length + 2) / 8) * 8);
      const v = new DataView(out.buffer);
      v.setBigUint64(0, 0x30000n);
      v.setUint32(8, 4);
      v.setUint16(12, 1);
      v.setUint16(14, 1);
      v.setUint32(32, 1234);
      v.setUint32(36, extra.length);
      out.set(extra, 40);
      out[40 + extra.length] = 0x37; // '7'
      out[41 + extra.length] = 0x61; // 'a'
      return out;
    };
    const none = parseSnapshotTable(entry(new Uint8Array(0)), 1, { defaultDiskSize: 5 << 20 }).snapshots[0]!;
    expect(none).toMatchObject({ id: '7', name: 'a', vmStateSize: 1234, diskSize: 5 << 20, icount: -1n, extraDataSize: 0 });
    const extra16 = new Uint8Array(16);
    new DataView(extra16.buffer).setBigUint64(0, 99n);
    new DataView(extra16.buffer).setBigUint64(8, 7n << 20n);
    const sixteen = parseSnapshotTable(entry(extra16), 1).snapshots[0]!;
    expect(sixteen).toMatchObject({ vmStateSize: 99, diskSize: 7 << 20, icount: -1n, extraDataSize: 16 });
  });

  it('bounds: nb_snapshots <= 65536, extra data <= 1 KiB, strings <= 65535 bytes, table <= 64 MiB (QEMU\'s limits)', () => {
    expect(codeOf(() => parseSnapshotTable(new Uint8Array(0), MAX_SNAPSHOTS + 1))).toBe('CORRUPT_IMAGE');
    const big = new Uint8Array(48);
    new DataView(big.buffer).setUint32(36, MAX_SNAPSHOT_EXTRA_DATA + 1);
    expect(codeOf(() => parseSnapshotTable(big, 1))).toBe('CORRUPT_IMAGE');
    const base: Qcow2Snapshot = {
      l1TableOffset: 0, l1Size: 0, id: '1', name: '', dateSec: 0, dateNsec: 0, vmClockNsec: 0n,
      vmStateSize: 0, diskSize: 0, icount: -1n, extraDataSize: 0, unknownExtraData: new Uint8Array(0),
    };
    expect(codeOf(() => serializeSnapshotTable([{ ...base, name: 'x'.repeat(65536) }]))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => serializeSnapshotTable([{ ...base, unknownExtraData: new Uint8Array(1001) }]))).toBe('INVALID_ARGUMENT');
    // 1100 entries with 64 KiB names pass 64 MiB.
    const huge = Array.from({ length: 1100 }, (_, i) => ({ ...base, id: String(i), name: 'n'.repeat(65535) }));
    expect(snapshotTableSize(huge)).toBeGreaterThan(MAX_SNAPSHOT_TABLE_SIZE);
    expect(codeOf(() => serializeSnapshotTable(huge))).toBe('INVALID_ARGUMENT');
  });

  it('H20: a table that runs past the end of the file, or garbage, is CORRUPT_IMAGE (fuzz)', async () => {
    const one = serializeSnapshotTable([
      {
        l1TableOffset: 0, l1Size: 0, id: '1', name: 'abc', dateSec: 0, dateNsec: 0, vmClockNsec: 0n,
        vmStateSize: 0, diskSize: 0, icount: -1n, extraDataSize: 0, unknownExtraData: new Uint8Array(0),
      },
    ]);
    const file = bytesFile(new Uint8Array([...new Uint8Array(4096), ...one.subarray(0, one.length - 1)]));
    await expect(readSnapshotTable(file, 4096, 1)).rejects.toMatchObject({ code: 'CORRUPT_IMAGE' });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.nat({ max: 70000 }), async (bytes, count) => {
        const f = bytesFile(bytes);
        try {
          const { snapshots, size } = await readSnapshotTable(f, 0, count);
          expect(snapshots.length).toBe(count);
          expect(size).toBeLessThanOrEqual(bytes.length);
        } catch (error) {
          expect(BlockError.isInstance(error) && error.code === 'CORRUPT_IMAGE').toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('readSnapshotTable reads tables larger than its first chunk', async () => {
    const snapshots = Array.from({ length: 40 }, (_, i): Qcow2Snapshot => ({
      l1TableOffset: 65536 * (i + 1), l1Size: 1, id: String(i + 1), name: `snapshot-${'x'.repeat(i * 50)}`,
      dateSec: i, dateNsec: 0, vmClockNsec: 0n, vmStateSize: 0, diskSize: 1 << 20, icount: -1n, extraDataSize: 24,
      unknownExtraData: new Uint8Array(0),
    }));
    const bytes = serializeSnapshotTable(snapshots);
    expect(bytes.length).toBeGreaterThan(40 * 64 * 4);
    const file = bytesFile(bytes);
    expect((await readSnapshotTable(file, 0, 40)).snapshots).toEqual(snapshots);
  });
});
