import { BlockError } from '@virtio-ts/block';
import { hasFeature } from '@virtio-ts/device';
import { RingError, type Segment } from '@virtio-ts/ring';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../testing/bytes.js';
import { MemoryDisk } from '../testing/memory-disk.js';
import { harness, settle, without } from '../testing/harness.js';
import { BlkDevice, type BlkDeviceOptions } from './blk-device.js';
import { decodeBlkConfig } from './config.js';
import {
  BLK_CONFIG,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from './constants.js';
import { encodeDiscardSegments, encodeRequestHeader, type RawDiscardSegment } from './request.js';

const DISK = 1 << 20; // 2048 sectors

const patterns = new Map<string, Uint8Array>();
function pattern(length: number, seed = 1): Uint8Array {
  const key = `${length}:${seed}`;
  const cached = patterns.get(key);
  if (cached !== undefined) return cached.slice();
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  patterns.set(key, out);
  return out.slice();
}

function setup(options: Partial<BlkDeviceOptions> & { disk?: MemoryDisk } = {}, negotiate?: (d: BlkDevice) => bigint) {
  const disk = options.disk ?? new MemoryDisk({ size: DISK });
  disk.bytes.set(pattern(DISK, 9));
  const device = new BlkDevice({ serial: 'serial-0', ...options, driver: disk });
  const h = harness(device);
  h.activate(negotiate ? negotiate(device) : device.deviceFeatures);
  const queue = h.queues[0]!;
  const b = h.builder;
  const header = (type: number, sector: bigint | number = 0, split?: number[]) =>
    b.place(encodeRequestHeader({ type, reserved: 0, sector: BigInt(sector) }), split);
  /** Submits a chain, lets it complete and returns the status byte and used length. */
  const run = async (readable: Segment[], writable: Segment[], q = queue, index = 0) => {
    const chain = b.chain(readable, writable);
    q.offer(chain);
    device.queueNotify(index);
    await device.drain();
    await settle();
    const used = q.used.find((u) => u.head === chain.head);
    const last = writable.filter((s) => s.length > 0).at(-1);
    const status = last === undefined ? undefined : h.memory.readU8(last.address + last.length - 1);
    return { used, status };
  };
  return { disk, device, h, queue, b, header, run };
}

describe('virtio-blk requests (VIRTIO 1.3 §5.2.6)', () => {
  it('5.2.6: VIRTIO_BLK_T_IN reads sectors into guest memory, zero-copy, used length = data + status', async () => {
    const { disk, b, header, run, h } = setup();
    const data = b.reserve([1024]);
    const status = b.reserve([1]);
    const r = await run(header(VIRTIO_BLK_T_IN, 3), [...data, ...status]);
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.used?.length).toBe(1025);
    expect(b.bytesOf(data)).toEqual(disk.bytes.subarray(3 * 512, 3 * 512 + 1024));
    // The driver was handed a view over guest memory, not a copy.
    expect(disk.readBuffers[0]!.buffer).toBe(h.memory.regions[0]!.buffer);
    expect(b.guardsIntact()).toBe(true);
  });

  it('5.2.6: VIRTIO_BLK_T_OUT writes the data to the disk', async () => {
    const { disk, b, header, run } = setup();
    const payload = pattern(1536, 4);
    const r = await run([...header(VIRTIO_BLK_T_OUT, 10), ...b.place(payload, [512, 1024])], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.used?.length).toBe(1);
    expect(disk.bytes.subarray(10 * 512, 10 * 512 + 1536)).toEqual(payload);
  });

  it('5.2.6.2: "A device MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if the VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data"', async () => {
    const { disk, device, b, header, run } = setup({ readOnly: true });
    expect(hasFeature(device.deviceFeatures, VIRTIO_BLK_F_RO)).toBe(true);
    expect(hasFeature(device.deviceFeatures, VIRTIO_BLK_F_DISCARD)).toBe(false);
    const before = disk.bytes.slice();
    const r = await run([...header(VIRTIO_BLK_T_OUT, 0), ...b.place(pattern(512))], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(equalBytes(disk.bytes, before)).toBe(true);
    expect(disk.calls.write).toBe(0);
    expect(device.metrics.faults.READ_ONLY).toBe(1);
  });

  it('5.2.6: VIRTIO_BLK_T_FLUSH flushes the BlockDriver', async () => {
    const { disk, b, header, run, device } = setup();
    const r = await run(header(VIRTIO_BLK_T_FLUSH), b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.calls.flush).toBe(1);
    expect(device.metrics.requests.flush).toBe(1);
  });

  it('5.2.6: "If the string is 20 bytes long then there is no NUL terminator" (GET_ID)', async () => {
    const { b, header, run } = setup({ serial: 'ABCDEFGHIJKLMNOPQRST' });
    const data = b.reserve([20]);
    const r = await run(header(VIRTIO_BLK_T_GET_ID), [...data, ...b.reserve([1])]);
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.used?.length).toBe(21);
    expect(new TextDecoder().decode(b.bytesOf(data))).toBe('ABCDEFGHIJKLMNOPQRST');
  });

  it('5.2.6: GET_ID of a shorter serial is NUL-padded to 20 bytes', async () => {
    const { b, header, run } = setup({ serial: 'disk7' });
    const data = b.reserve([20]);
    await run(header(VIRTIO_BLK_T_GET_ID), [...data, ...b.reserve([1])]);
    const expected = new Uint8Array(20);
    expected.set(new TextEncoder().encode('disk7'));
    expect(b.bytesOf(data)).toEqual(expected);
  });

  it('5.2.6: DISCARD deallocates each segment', async () => {
    const { disk, b, header, run, device } = setup();
    const segs = encodeDiscardSegments([
      { sector: 8n, numSectors: 2, flags: 0 },
      { sector: 100n, numSectors: 1, flags: 0 },
    ]);
    const r = await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(segs)], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(8 * 512, 10 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes.subarray(100 * 512, 101 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes[10 * 512]).not.toBe(0);
    expect(device.metrics.discardBytes).toBe(1536);
  });

  it('5.2.6.2: "MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard commands if the unmap flag is set"', async () => {
    const { b, header, run, device, disk } = setup();
    const r = await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(encodeDiscardSegments([{ sector: 0n, numSectors: 1, flags: 1 }]))], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(disk.calls.discard).toBe(0);
    expect(device.metrics.faults.UNMAP_ON_DISCARD).toBe(1);
  });

  it('5.2.6.2: "MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard, secure erase and write zeroes commands if any unknown flag is set"', async () => {
    for (const type of [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES]) {
      const { b, header, run, device } = setup();
      const r = await run([...header(type), ...b.place(encodeDiscardSegments([{ sector: 0n, numSectors: 1, flags: 0x8000_0000 }]))], b.reserve([1]));
      expect(r.status).toBe(VIRTIO_BLK_S_UNSUPP);
      expect(device.metrics.faults.RESERVED_FLAGS).toBe(1);
    }
  });

  it('5.2.6.1: a DISCARD with more than max_discard_seg segments is IOERR', async () => {
    const { b, header, run, device } = setup({ maxDiscardSeg: 2 });
    const three: RawDiscardSegment[] = [0n, 1n, 2n].map((sector) => ({ sector, numSectors: 1, flags: 0 }));
    const r = await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(encodeDiscardSegments(three))], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.faults.BAD_SEGMENT_COUNT).toBe(1);
  });

  it('5.2.6.1: DISCARD with zero segments, a partial segment, or a segment past max_discard_sectors is IOERR', async () => {
    const { b, header, run, device } = setup({ maxDiscardSectors: 8 });
    expect((await run(header(VIRTIO_BLK_T_DISCARD), b.reserve([1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(new Uint8Array(15))], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    const big = encodeDiscardSegments([{ sector: 0n, numSectors: 9, flags: 0 }]);
    expect((await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(big)], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.faults).toMatchObject({ BAD_SEGMENT_COUNT: 1, BAD_DATA_LENGTH: 1, SEGMENT_TOO_LARGE: 1 });
  });

  it('5.2.6.2: "After a write zeroes command is completed, reads of the specified ranges of sectors MUST return zeroes" (with and without unmap)', async () => {
    const { disk, b, header, run } = setup();
    const segs = encodeDiscardSegments([
      { sector: 4n, numSectors: 2, flags: 1 },
      { sector: 20n, numSectors: 1, flags: 0 },
    ]);
    const r = await run([...header(VIRTIO_BLK_T_WRITE_ZEROES), ...b.place(segs)], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(4 * 512, 6 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes.subarray(20 * 512, 21 * 512).every((x) => x === 0)).toBe(true);
  });

  it('5.2.6.2: WRITE_ZEROES on a BlockDriver without writeZeroes is emulated with writes of zeroes', async () => {
    const disk = new MemoryDisk({ size: DISK, writeZeroes: false });
    const { b, header, run, device } = setup({ disk });
    expect(device.config().writeZeroesMayUnmap).toBe(0);
    const r = await run([...header(VIRTIO_BLK_T_WRITE_ZEROES), ...b.place(encodeDiscardSegments([{ sector: 1n, numSectors: 3, flags: 1 }]))], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(512, 4 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.calls.write).toBeGreaterThan(0);
  });

  it('a BlockDriver that answers UNSUPPORTED: discard still completes OK (advisory), write-zeroes falls back to writes', async () => {
    const disk = new MemoryDisk({ size: DISK });
    const unsupported = () => Promise.reject(new BlockError('UNSUPPORTED', 'not here'));
    disk.discard = unsupported;
    disk.writeZeroes = unsupported;
    const { b, header, run, device } = setup({ disk });
    const seg = encodeDiscardSegments([{ sector: 2n, numSectors: 1, flags: 0 }]);
    expect((await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(seg)], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_OK);
    expect((await run([...header(VIRTIO_BLK_T_WRITE_ZEROES), ...b.place(seg)], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(1024, 1536).every((x) => x === 0)).toBe(true);
    expect(device.metrics.faults.BACKEND_ERROR).toBe(0);
  });

  it('5.2.6: DISCARD and WRITE_ZEROES without their feature negotiated are UNSUPP', async () => {
    const { b, header, run } = setup({}, (d) => without(d, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES));
    const segs = encodeDiscardSegments([{ sector: 0n, numSectors: 1, flags: 0 }]);
    expect((await run([...header(VIRTIO_BLK_T_DISCARD), ...b.place(segs)], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_UNSUPP);
    expect((await run([...header(VIRTIO_BLK_T_WRITE_ZEROES), ...b.place(segs)], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_UNSUPP);
  });

  it('5.2.6: unknown request types, GET_LIFETIME and zoned types are UNSUPP', async () => {
    const { b, header, run, device } = setup();
    for (const type of [VIRTIO_BLK_T_GET_LIFETIME, 3, 16, 0xffff_ffff]) {
      expect((await run(header(type), b.reserve([8, 1]))).status).toBe(VIRTIO_BLK_S_UNSUPP);
    }
    expect(device.metrics.faults.UNSUPPORTED_TYPE).toBe(4);
    expect(device.metrics.status.unsupp).toBe(4);
  });
});

describe('virtio-blk hostile requests (HOSTILE-INPUTS.md)', () => {
  it('H7: a header split 1 + 15 bytes across descriptors is parsed byte-exact', async () => {
    const { disk, b, header, run } = setup();
    const data = b.reserve([512]);
    const r = await run(header(VIRTIO_BLK_T_IN, 7, [1, 15]), [...data, ...b.reserve([1])]);
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(b.bytesOf(data)).toEqual(disk.bytes.subarray(7 * 512, 8 * 512));
  });

  it('H7: a 1-byte status in its own descriptor after data in one descriptor', async () => {
    const { disk, b, header, run } = setup();
    const payload = pattern(512, 3);
    const r = await run([...header(VIRTIO_BLK_T_OUT, 1), ...b.place(payload)], b.reserve([1]));
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(512, 1024)).toEqual(payload);
  });

  it('H7: a header in a write-only descriptor is IOERR (HEADER_TOO_SHORT), nothing read or written', async () => {
    const { disk, b, run, device } = setup();
    const writable = b.reserve([16, 512, 1]);
    const r = await run([], writable);
    expect(r.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(r.used?.length).toBe(0);
    expect(disk.calls.read + disk.calls.write).toBe(0);
    expect(device.metrics.faults.HEADER_TOO_SHORT).toBe(1);
  });

  it('H7: status before data: the last writable byte is the status whatever the guest meant (§2.6.4), nothing outside the chain is touched', async () => {
    const { disk, b, header, run } = setup();
    // The guest put a 1-byte "status" descriptor first, then 512 bytes of "data".
    const writable = b.reserve([1, 512]);
    const r = await run(header(VIRTIO_BLK_T_IN, 2), writable);
    // 513 writable bytes: 512 of data (the first descriptor plus 511) and the status in the last byte.
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    const bytes = b.bytesOf(writable);
    expect(bytes.subarray(0, 512)).toEqual(disk.bytes.subarray(1024, 1536));
    expect(b.guardsIntact()).toBe(true);
  });

  it('H7: status before data on a write: writable data on OUT is IOERR and the disk is unchanged', async () => {
    const { disk, b, header, run, device } = setup();
    const before = disk.bytes.slice();
    const r = await run(header(VIRTIO_BLK_T_OUT, 0), b.reserve([1, 512]));
    expect(r.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(equalBytes(disk.bytes, before)).toBe(true);
    expect(device.metrics.faults.UNEXPECTED_DATA).toBe(1);
  });

  it('H9: a READ whose writable space is shorter than a sector is IOERR and writes nothing else', async () => {
    const { b, header, run, device, disk } = setup();
    const data = b.reserve([300], 0xcc);
    const r = await run(header(VIRTIO_BLK_T_IN, 0), [...data, ...b.reserve([1])]);
    expect(r.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(r.used?.length).toBe(0);
    expect(b.bytesOf(data).every((x) => x === 0xcc)).toBe(true);
    expect(b.guardsIntact()).toBe(true);
    expect(disk.calls.read).toBe(0);
    expect(device.metrics.faults.BAD_DATA_LENGTH).toBe(1);
  });

  it('5.2.6.1: "A driver MUST NOT submit a request which would cause a read or write beyond capacity" — IOERR past capacity and on sector overflow', async () => {
    const { b, header, run, device, disk } = setup();
    const sectors = DISK / 512;
    expect((await run(header(VIRTIO_BLK_T_IN, sectors - 1), b.reserve([1024, 1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await run(header(VIRTIO_BLK_T_IN, sectors), b.reserve([512, 1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await run(header(VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ffffn), b.reserve([512, 1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await run([...header(VIRTIO_BLK_T_OUT, 2n ** 63n as unknown as number), ...b.place(pattern(512))], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    const segs = encodeDiscardSegments([{ sector: 0xffff_ffff_ffff_fff0n, numSectors: 0x20, flags: 0 }]);
    expect((await run([...header(VIRTIO_BLK_T_WRITE_ZEROES), ...b.place(segs)], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.faults.OUT_OF_RANGE).toBe(5);
    expect(disk.calls.read + disk.calls.write + disk.calls.writeZeroes).toBe(0);
    // The last sector itself is fine.
    expect((await run(header(VIRTIO_BLK_T_IN, sectors - 1), b.reserve([512, 1]))).status).toBe(VIRTIO_BLK_S_OK);
  });

  it('H3: zero-length header, data and status descriptors are skipped, not looped on', async () => {
    const { disk, b, header, run } = setup();
    const data = b.reserve([0, 512, 0]);
    // Readable: 0, header, 0; writable: 0, 512, 0, status, 0.
    const r = await run([...b.reserve([0]), ...header(VIRTIO_BLK_T_IN, 5), ...b.reserve([0])], [...data, ...b.reserve([1, 0])]);
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(b.bytesOf(data)).toEqual(disk.bytes.subarray(5 * 512, 6 * 512));
  });

  it('a chain with no writable byte is returned with used length 0 (NO_STATUS_BYTE), not leaked', async () => {
    const { header, run, device, queue } = setup();
    const r = await run(header(VIRTIO_BLK_T_FLUSH), []);
    expect(r.used).toEqual({ head: expect.any(Number) as number, length: 0 });
    expect(queue.pending).toEqual([]);
    expect(device.metrics.faults.NO_STATUS_BYTE).toBe(1);
  });

  it('H14: every request type fed 1-byte descriptors gives byte-exact results', async () => {
    const { disk, b, run } = setup({ serial: 'one-byte-descriptors' });
    const ones = (n: number) => Array.from({ length: n }, () => 1);
    const hdr = (type: number, sector: number) => b.place(encodeRequestHeader({ type, reserved: 0, sector: BigInt(sector) }), ones(16));
    // Write 1024 bytes in 1-byte descriptors, read them back in 1-byte descriptors.
    const payload = pattern(1024, 77);
    expect((await run([...hdr(VIRTIO_BLK_T_OUT, 33), ...b.place(payload, ones(1024))], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(33 * 512, 35 * 512)).toEqual(payload);
    const readBack = b.reserve(ones(1024));
    const r = await run(hdr(VIRTIO_BLK_T_IN, 33), [...readBack, ...b.reserve([1])]);
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.used?.length).toBe(1025);
    expect(b.bytesOf(readBack)).toEqual(payload);
    // GET_ID into 1-byte descriptors.
    const id = b.reserve(ones(20));
    expect((await run(hdr(VIRTIO_BLK_T_GET_ID, 0), [...id, ...b.reserve([1])])).status).toBe(VIRTIO_BLK_S_OK);
    expect(new TextDecoder().decode(b.bytesOf(id))).toBe('one-byte-descriptors');
    // WRITE_ZEROES with its segment in 1-byte descriptors.
    const seg = encodeDiscardSegments([{ sector: 33n, numSectors: 1, flags: 0 }]);
    expect((await run([...hdr(VIRTIO_BLK_T_WRITE_ZEROES, 0), ...b.place(seg, ones(16))], b.reserve([1]))).status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.bytes.subarray(33 * 512, 34 * 512).every((x) => x === 0)).toBe(true);
    expect(disk.bytes.subarray(34 * 512, 35 * 512)).toEqual(payload.subarray(512));
    expect((await run(hdr(VIRTIO_BLK_T_FLUSH, 0), b.reserve([1]))).status).toBe(VIRTIO_BLK_S_OK);
    expect(b.guardsIntact()).toBe(true);
  });

  it('H13: many malformed requests are all returned, counted, and a valid request still completes', async () => {
    const { b, header, device, queue, disk } = setup();
    const bad = header(0xdead, 0);
    const status = b.reserve([1]);
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      queue.offer(b.chain(bad, status, i % 256));
      device.queueNotify(0);
    }
    expect(queue.used.length).toBe(n);
    expect(queue.pending).toEqual([]);
    expect(device.metrics.faults.UNSUPPORTED_TYPE).toBe(n);
    const data = b.reserve([512]);
    queue.offer(b.chain(header(VIRTIO_BLK_T_IN, 1), [...data, ...b.reserve([1])], 999));
    device.queueNotify(0);
    await device.drain();
    expect(b.bytesOf(data)).toEqual(disk.bytes.subarray(512, 1024));
  });
});

describe('virtio-blk reset from inside a completion (H11)', () => {
  it('H11: the driver resets the device from the used-buffer interrupt: nothing more is pushed, nothing throws', async () => {
    for (const type of [0xbad /* completes synchronously (UNSUPP) */, VIRTIO_BLK_T_FLUSH /* completes asynchronously */]) {
      const disk = new MemoryDisk({ size: DISK });
      const device = new BlkDevice({ driver: disk });
      const h = harness(device);
      const queue = h.queues[0]!;
      h.activate(device.deviceFeatures);
      const b = h.builder;
      const original = device.reset.bind(device);
      let resets = 0;
      // Interrupt handler of a driver that resets on the first completion.
      h.queueInterrupts.push = (...items: number[]) => {
        if (resets++ === 0) original();
        return items.length;
      };
      for (let i = 0; i < 3; i++) queue.offer(b.chain(b.place(encodeRequestHeader({ type, reserved: 0, sector: 0n })), b.reserve([1]), i));
      expect(() => device.queueNotify(0)).not.toThrow();
      await device.drain();
      await settle();
      expect(queue.used.length).toBe(1);
      expect(h.needsReset).toEqual([]);
    }
  });
});

describe('virtio-blk fairness', () => {
  it('H17: a ring kept full yields after 4 x queue size chains; other queues stay responsive, the rest completes later', async () => {
    const { b, header, device, h } = setup({ numQueues: 2, queueSize: 64 });
    const busy = h.queues[0]!;
    const status = b.reserve([1]);
    const flush = header(VIRTIO_BLK_T_FLUSH);
    for (let i = 0; i < 1000; i++) busy.offer(b.chain(flush, status, i));
    device.queueNotify(0);
    expect(device.metrics.notifications).toBe(1);
    // One notification handed out 256 chains, then returned to the event loop.
    expect(busy.available).toBe(1000 - 256);
    const other = h.queues[1]!;
    other.offer(b.chain(header(VIRTIO_BLK_T_FLUSH), b.reserve([1]), 5000));
    device.queueNotify(1);
    await device.drain();
    expect(other.used.map((u) => u.head)).toEqual([5000]);
    for (let i = 0; i < 10 && busy.used.length < 1000; i++) {
      await settle();
      await device.drain();
    }
    expect(busy.used.length).toBe(1000);
  });
});

describe('virtio-blk ring errors', () => {
  it('2.7: a non-fatal chain error is returned with length 0 and the queue goes on', async () => {
    const { b, header, device, queue, h } = setup();
    queue.offer(new RingError('ADDRESS_OUT_OF_RANGE', 'bad address', { head: 5 }));
    queue.offer(b.chain(header(VIRTIO_BLK_T_FLUSH), b.reserve([1]), 6));
    device.queueNotify(0);
    await device.drain();
    expect(queue.used).toEqual([
      { head: 5, length: 0 },
      { head: 6, length: 1 },
    ]);
    expect(device.metrics.ringErrors).toBe(1);
    expect(h.needsReset).toEqual([]);
  });

  it('2.1.2: a fatal ring error sets DEVICE_NEEDS_RESET and stops the queue (never throws)', () => {
    const { b, header, device, queue, h } = setup();
    queue.offer(new RingError('DESCRIPTOR_LOOP', 'loop', {}, { fatal: true }));
    queue.offer(b.chain(header(VIRTIO_BLK_T_FLUSH), b.reserve([1])));
    expect(() => device.queueNotify(0)).not.toThrow();
    expect(h.needsReset.length).toBe(1);
    expect(device.metrics.needsReset).toBe(1);
    expect(queue.used).toEqual([]);
    device.queueNotify(0);
    expect(h.needsReset.length).toBe(1);
  });

  it('H10: a head made available twice while in flight breaks the queue, the first completion is not pushed twice', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { b, header, device, queue, h } = setup({ disk });
    const chain = b.chain(header(VIRTIO_BLK_T_IN, 0), b.reserve([512, 1]), 0);
    queue.offer(chain);
    queue.offer(chain);
    device.queueNotify(0);
    expect(h.needsReset.length).toBe(1);
    disk.held.forEach((op) => op.release());
    await device.drain();
    // The device is broken: it does not push to a queue it gave up on.
    expect(queue.used).toEqual([]);
  });
});

describe('virtio-blk concurrency', () => {
  it('5.2.6: requests run concurrently and complete out of order', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { b, header, device, queue } = setup({ disk });
    const datas = Array.from({ length: 8 }, (_, i) => {
      const data = b.reserve([512]);
      queue.offer(b.chain(header(VIRTIO_BLK_T_IN, i), [...data, ...b.reserve([1])], i));
      return data;
    });
    device.queueNotify(0);
    expect(device.inFlight).toBe(8);
    expect(device.metrics.maxInFlight).toBe(8);
    disk.bytes.set(pattern(DISK, 5));
    for (const op of [...disk.held].reverse()) {
      op.release();
      await settle();
    }
    await device.drain();
    expect(queue.used.map((u) => u.head)).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
    datas.forEach((d, i) => expect(b.bytesOf(d)).toEqual(disk.bytes.subarray(i * 512, (i + 1) * 512)));
    expect(device.metrics.inFlight).toBe(0);
  });

  it('a BlockDriver failure is IOERR with a BACKEND_ERROR count', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { b, header, device, queue } = setup({ disk });
    const status = b.reserve([1]);
    queue.offer(b.chain([...header(VIRTIO_BLK_T_OUT, 0), ...b.place(pattern(512))], status));
    device.queueNotify(0);
    disk.held[0]!.fail();
    await device.drain();
    expect(b.bytesOf(status)[0]).toBe(VIRTIO_BLK_S_IOERR);
    expect(device.metrics.faults.BACKEND_ERROR).toBe(1);
    expect(device.metrics.invalidRequests).toBe(0);
  });

  it('H8: a reset while requests are in flight drops their completions instead of pushing to the reset ring', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { b, header, device, queue } = setup({ disk });
    queue.offer(b.chain(header(VIRTIO_BLK_T_IN, 0), b.reserve([512, 1])));
    device.queueNotify(0);
    device.reset();
    let drained = false;
    const pending = device.drain().then(() => (drained = true));
    await settle();
    // drain() also waits for the BlockDriver call of the reset generation.
    expect(drained).toBe(false);
    disk.held[0]!.release();
    await pending;
    await settle();
    expect(queue.used).toEqual([]);
    expect(device.metrics.droppedAfterReset).toBe(1);
  });

  it('5.2.2: with VIRTIO_BLK_F_MQ every queue serves requests; without it only requestq1 does', async () => {
    const mq = setup({ numQueues: 3 });
    for (const index of [0, 1, 2]) {
      const r = await mq.run(mq.header(VIRTIO_BLK_T_FLUSH), mq.b.reserve([1]), mq.h.queues[index], index);
      expect(r.status).toBe(VIRTIO_BLK_S_OK);
    }
    expect(mq.h.queueInterrupts).toEqual([0, 1, 2]);
    const single = setup({ numQueues: 3 }, (d) => without(d, VIRTIO_BLK_F_MQ));
    single.h.queues[1]!.offer(single.b.chain(single.header(VIRTIO_BLK_T_FLUSH), single.b.reserve([1])));
    single.device.queueNotify(1);
    expect(single.h.queues[1]!.used).toEqual([]);
  });
});

describe('virtio-blk caching (§5.2.6.2 stable writes)', () => {
  const writeOnce = async (s: ReturnType<typeof setup>) => {
    await s.run([...s.header(VIRTIO_BLK_T_OUT, 0), ...s.b.place(pattern(512))], s.b.reserve([1]));
    return s.disk.calls.flush;
  };

  it('5.2.6.2 case 2: CONFIG_WCE negotiated and writeback = 0: every write is flushed before completion', async () => {
    const s = setup();
    s.device.writeConfig(BLK_CONFIG.writeback, Uint8Array.of(0));
    expect(s.device.writeback).toBe(false);
    expect(await writeOnce(s)).toBe(1);
    s.device.writeConfig(BLK_CONFIG.writeback, Uint8Array.of(1));
    expect(await writeOnce(s)).toBe(1);
  });

  it('5.2.6.2 case 1: FLUSH offered but neither FLUSH nor CONFIG_WCE negotiated: writes are stable on completion', async () => {
    const s = setup({}, (d) => without(d, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE));
    expect(await writeOnce(s)).toBe(1);
  });

  it('5.2.5.2: "If VIRTIO_BLK_F_CONFIG_WCE is negotiated but VIRTIO_BLK_F_FLUSH is not, the device MUST initialize writeback to 0"', () => {
    const s = setup({}, (d) => without(d, VIRTIO_BLK_F_FLUSH));
    expect(s.device.config().writeback).toBe(0);
  });

  it('writeback is read-only without CONFIG_WCE; other config writes are ignored and counted', () => {
    const s = setup({}, (d) => without(d, VIRTIO_BLK_F_CONFIG_WCE));
    s.device.writeConfig(BLK_CONFIG.writeback, Uint8Array.of(0));
    s.device.writeConfig(BLK_CONFIG.capacity, new Uint8Array(8));
    expect(s.device.writeback).toBe(true);
    expect(s.device.capacity).toBe(DISK / 512);
    expect(s.device.metrics.ignoredConfigWrites).toBe(2);
  });
});

describe('virtio-blk configuration space (§5.2.4)', () => {
  it('5.2.4: every field at its offset, unused0/unused1 zero (§5.2.5.2 MUST)', () => {
    const disk = new MemoryDisk({ size: DISK, requestAlignment: 4096 });
    const device = new BlkDevice({ driver: disk, numQueues: 4, queueSize: 128, sizeMax: 65536, geometry: { cylinders: 300, heads: 16, sectors: 63 }, maxDiscardSeg: 7 });
    const bytes = new Uint8Array(BLK_CONFIG.size);
    device.readConfig(0, bytes);
    const v = new DataView(bytes.buffer);
    expect(v.getBigUint64(0, true)).toBe(BigInt(DISK / 512));
    expect(v.getUint32(8, true)).toBe(65536);
    expect(v.getUint32(12, true)).toBe(126);
    expect([v.getUint16(16, true), bytes[18], bytes[19]]).toEqual([300, 16, 63]);
    expect(v.getUint32(20, true)).toBe(4096);
    expect(bytes[32]).toBe(1);
    expect(bytes[33]).toBe(0);
    expect(v.getUint16(34, true)).toBe(4);
    expect(v.getUint32(40, true)).toBe(7);
    expect(v.getUint32(44, true)).toBe(8);
    expect(bytes[56]).toBe(1);
    expect([...bytes.subarray(57, 60)]).toEqual([0, 0, 0]);
    expect(decodeBlkConfig(bytes)).toEqual(device.config());
    const part = new Uint8Array(2);
    device.readConfig(34, part);
    expect(part).toEqual(Uint8Array.of(4, 0));
  });

  it('offers SEG_MAX, SIZE_MAX, BLK_SIZE, TOPOLOGY, FLUSH, CONFIG_WCE, MQ, DISCARD, WRITE_ZEROES and VERSION_1', () => {
    const device = new BlkDevice({ driver: new MemoryDisk({ size: DISK }) });
    for (const bit of [1, 2, 6, 9, 10, 11, 12, 13, 14, 32]) expect(hasFeature(device.deviceFeatures, bit)).toBe(true);
    expect(hasFeature(device.deviceFeatures, 5)).toBe(false);
    expect(hasFeature(device.deviceFeatures, 35)).toBe(false); // never IN_ORDER: completions are out of order
  });

  it('refuses bad options with BackendError INVALID_OPTION', () => {
    const driver = new MemoryDisk({ size: DISK });
    expect(() => new BlkDevice({ driver, serial: 'x'.repeat(21) })).toThrow(/INVALID_OPTION/);
    expect(() => new BlkDevice({ driver, numQueues: 0 })).toThrow(/numQueues/);
    expect(() => new BlkDevice({ driver, queueSize: 100 })).toThrow(/queueSize/);
    expect(() => new BlkDevice({ driver, maxDiscardSeg: 100000 })).toThrow(/maxDiscardSeg/);
  });

  it('5.2.6.2: a capacity change updates capacity and sends a configuration change notification', async () => {
    const s = setup();
    s.disk.setLength(DISK / 2);
    s.device.refreshCapacity();
    expect(s.device.config().capacity).toBe(DISK / 1024);
    expect(s.h.configInterrupts.count).toBe(1);
    expect(s.device.configGeneration).toBe(1);
    expect((await s.run(s.header(VIRTIO_BLK_T_IN, DISK / 1024), s.b.reserve([512, 1]))).status).toBe(VIRTIO_BLK_S_IOERR);
  });

  it('an unaligned request on a 4096-byte disk is IOERR (UNALIGNED)', async () => {
    const s = setup({ disk: new MemoryDisk({ size: DISK, requestAlignment: 4096 }) });
    expect((await s.run(s.header(VIRTIO_BLK_T_IN, 1), s.b.reserve([4096, 1]))).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await s.run(s.header(VIRTIO_BLK_T_IN, 8), s.b.reserve([4096, 1]))).status).toBe(VIRTIO_BLK_S_OK);
    expect(s.device.metrics.faults.UNALIGNED).toBe(1);
  });

  it('metrics serialise to the documented JSON shape', () => {
    const s = setup();
    const json = JSON.parse(JSON.stringify(s.device.metrics)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual([
      'requests', 'readBytes', 'writeBytes', 'discardBytes', 'writeZeroesBytes', 'status', 'faults', 'invalidRequests',
      'inFlight', 'maxInFlight', 'ringErrors', 'needsReset', 'droppedAfterReset', 'notifications', 'interrupts', 'configWrites', 'ignoredConfigWrites',
    ]);
    expect(Object.keys(json.faults as object)).toHaveLength(15);
  });
});
