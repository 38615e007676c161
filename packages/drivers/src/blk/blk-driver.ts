import {
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureBits,
  hasFeature,
  negotiateFeatures,
  setDriverOk,
  type Features,
  type VirtioTransport,
} from '@virtio-ts/device';
import type { Segment } from '@virtio-ts/ring';
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VirtqueueClient } from '../virtqueue-client.js';
import { utf8Decode } from '../web-apis.js';
import {
  BLK_CONFIG_OFFSETS as C,
  SECTOR_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from './constants.js';

/** Options of {@link BlkDriver.init}. */
export interface BlkDriverOptions {
  /** Request queues to use when VIRTIO_BLK_F_MQ is offered (at most `num_queues`). Default: all. */
  readonly queues?: number;
  /** Queue size (default: the device's maximum). */
  readonly queueSize?: number;
  /** Features to leave out of negotiation (a mask), e.g. to test a device without MQ. */
  readonly exclude?: Features;
  /** Largest data length of one request (larger I/O is split). Default 1 MiB, Linux's max_sectors_kb order. */
  readonly maxRequestBytes?: number;
}

/** The device's limits, read from its configuration space after negotiation (§5.2.4). */
export interface BlkLimits {
  /** Disk size in 512-byte sectors. */
  readonly capacity: number;
  /** Bytes per logical block: every request is a multiple of it (512 without BLK_SIZE). */
  readonly blkSize: number;
  /** Most data segments per request (seg_max), or Infinity without SEG_MAX. */
  readonly segMax: number;
  /** Most bytes per segment (size_max), or Infinity without SIZE_MAX. */
  readonly sizeMax: number;
  readonly maxDiscardSectors: number;
  readonly maxDiscardSeg: number;
  readonly maxWriteZeroesSectors: number;
  readonly maxWriteZeroesSeg: number;
  readonly writeZeroesMayUnmap: boolean;
}

/** One range of a DISCARD or WRITE_ZEROES request. */
export interface SectorRange {
  readonly sector: number;
  readonly count: number;
}

/** Features this driver understands (§5.2.3 and the ring's). */
const SUPPORTED = featureBits(
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
);

/**
 * A virtio-blk front-end driver model (VIRTIO 1.3 §5.2), like Linux's virtio_blk: negotiates,
 * reads the limits, sets up one queue per request queue (MQ), and offers a promise API with any
 * number of requests in flight. Large I/O is split to honour `seg_max` × `size_max`; data is
 * copied into and out of driver buffers in guest memory.
 *
 * @example
 * ```ts
 * const disk = BlkDriver.init(transport);                  // any VirtioTransport (pci, mmio)
 * await disk.write(8, new Uint8Array(4096).fill(7));       // sector 8, 4 KiB
 * const back = await disk.read(8, 4096);
 * await disk.flush();
 * console.log(disk.limits.capacity, await disk.getId());
 * ```
 */
export class BlkDriver {
  readonly features: Features;
  /** Re-read on every configuration change notification (capacity may change, §5.2.6.1). */
  limits: BlkLimits;
  readonly readOnly: boolean;
  private readonly queues: VirtqueueClient[];
  private readonly maxRequestBytes: number;
  private nextQueue = 0;

  private constructor(
    readonly transport: VirtioTransport,
    features: Features,
    queues: VirtqueueClient[],
    maxRequestBytes: number,
  ) {
    this.maxRequestBytes = maxRequestBytes;
    this.features = features;
    this.queues = queues;
    this.readOnly = hasFeature(features, VIRTIO_BLK_F_RO);
    this.limits = this.readLimits();
    // §5.2.6.1: "The driver SHOULD check if the content of the capacity field has changed upon
    // receiving a configuration change notification."
    transport.onConfigChange(() => {
      this.limits = this.readLimits();
    });
  }

  /** Initialises the device (§3.1.1) and returns the driver. Throws DeviceError NEGOTIATION_FAILED. */
  static init(transport: VirtioTransport, options: BlkDriverOptions = {}): BlkDriver {
    const features = negotiateFeatures(transport, SUPPORTED & ~(options.exclude ?? 0n));
    let count = 1;
    if (hasFeature(features, VIRTIO_BLK_F_MQ)) {
      const numQueues = new DataView(transport.readConfig(C.numQueues, 2).buffer).getUint16(0, true);
      count = Math.max(1, Math.min(numQueues, options.queues ?? numQueues, transport.numQueues));
    }
    const queues = Array.from({ length: count }, (_, i) => new VirtqueueClient(transport, i, options.queueSize !== undefined ? { size: options.queueSize } : {}));
    setDriverOk(transport);
    const maxRequestBytes = options.maxRequestBytes ?? 1024 * 1024;
    if (!Number.isSafeInteger(maxRequestBytes) || maxRequestBytes < SECTOR_SIZE) {
      throw new DriverError('INVALID_ARGUMENT', 'maxRequestBytes must be at least 512', { device: 'blk' });
    }
    return new BlkDriver(transport, features, queues, maxRequestBytes);
  }

  /** Request queues in use. */
  get numQueues(): number {
    return this.queues.length;
  }

  /** Requests in flight (or waiting for descriptors) over all queues. */
  get pending(): number {
    return this.queues.reduce((n, q) => n + q.pending, 0);
  }

  /** The cache mode (§5.2.5): true for writeback. Without CONFIG_WCE: writeback iff FLUSH. */
  get writeback(): boolean {
    if (!hasFeature(this.features, VIRTIO_BLK_F_CONFIG_WCE)) return hasFeature(this.features, VIRTIO_BLK_F_FLUSH);
    return this.transport.readConfig(C.writeback, 1)[0] === 1;
  }

  /** Switches writeback (true) / writethrough (false); needs CONFIG_WCE (§5.2.6.1). */
  setWriteback(enabled: boolean): void {
    this.need(VIRTIO_BLK_F_CONFIG_WCE, 'CONFIG_WCE');
    this.transport.writeConfig(C.writeback, Uint8Array.of(enabled ? 1 : 0));
  }

  /** Reads `length` bytes (a multiple of blk_size) from `sector`. */
  async read(sector: number, length: number, options: { queue?: number } = {}): Promise<Uint8Array> {
    this.checkRange(sector, length);
    const out = new Uint8Array(length);
    await Promise.all(
      this.pieces(sector, length).map(async ({ sector: s, offset, length: n }) => {
        const data = new DmaBuffer(this.transport.allocator, n, 512);
        try {
          await this.request(VIRTIO_BLK_T_IN, s, [], data.segments(this.limits.sizeMax), options.queue);
          out.set(data.read(), offset);
        } finally {
          data.free();
        }
      }),
    );
    return out;
  }

  /** Writes `data` (a multiple of blk_size) at `sector`. */
  async write(sector: number, data: Uint8Array, options: { queue?: number } = {}): Promise<void> {
    if (this.readOnly) throw new DriverError('READ_ONLY', 'the device is read-only (VIRTIO_BLK_F_RO)', { device: 'blk', sector });
    this.checkRange(sector, data.length);
    await Promise.all(
      this.pieces(sector, data.length).map(async ({ sector: s, offset, length: n }) => {
        const buffer = new DmaBuffer(this.transport.allocator, n, 512);
        try {
          buffer.write(data.subarray(offset, offset + n));
          await this.request(VIRTIO_BLK_T_OUT, s, buffer.segments(this.limits.sizeMax), [], options.queue);
        } finally {
          buffer.free();
        }
      }),
    );
  }

  /** VIRTIO_BLK_T_FLUSH: every completed write is stable when this resolves. */
  async flush(options: { queue?: number } = {}): Promise<void> {
    this.need(VIRTIO_BLK_F_FLUSH, 'FLUSH');
    // §5.2.6.1: sector MUST be 0, and no data.
    await this.request(VIRTIO_BLK_T_FLUSH, 0, [], [], options.queue);
  }

  /** VIRTIO_BLK_T_GET_ID: the device ID string (NUL padding removed). */
  async getId(options: { queue?: number } = {}): Promise<string> {
    // §5.2.6.1: the data MUST be 20 bytes.
    const buffer = new DmaBuffer(this.transport.allocator, VIRTIO_BLK_ID_BYTES);
    try {
      buffer.write(new Uint8Array(VIRTIO_BLK_ID_BYTES));
      await this.request(VIRTIO_BLK_T_GET_ID, 0, [], buffer.segments(), options.queue);
      const bytes = buffer.read();
      const end = bytes.indexOf(0);
      return utf8Decode(end === -1 ? bytes : bytes.subarray(0, end));
    } finally {
      buffer.free();
    }
  }

  /** VIRTIO_BLK_T_DISCARD of the ranges (split to honour max_discard_seg / max_discard_sectors). */
  async discard(ranges: readonly SectorRange[], options: { queue?: number } = {}): Promise<void> {
    this.need(VIRTIO_BLK_F_DISCARD, 'DISCARD');
    if (this.readOnly) throw new DriverError('READ_ONLY', 'the device is read-only', { device: 'blk' });
    await this.rangeRequests(VIRTIO_BLK_T_DISCARD, ranges, false, this.limits.maxDiscardSeg, this.limits.maxDiscardSectors, options.queue);
  }

  /** VIRTIO_BLK_T_WRITE_ZEROES; with `unmap` the device may deallocate (§5.2.6). */
  async writeZeroes(ranges: readonly SectorRange[], options: { unmap?: boolean; queue?: number } = {}): Promise<void> {
    this.need(VIRTIO_BLK_F_WRITE_ZEROES, 'WRITE_ZEROES');
    if (this.readOnly) throw new DriverError('READ_ONLY', 'the device is read-only', { device: 'blk' });
    await this.rangeRequests(VIRTIO_BLK_T_WRITE_ZEROES, ranges, options.unmap ?? false, this.limits.maxWriteZeroesSeg, this.limits.maxWriteZeroesSectors, options.queue);
  }

  /** Resets the device; pending requests reject with DEVICE_RESET. */
  reset(): void {
    for (const q of this.queues) q.close();
    this.transport.reset();
  }

  private async rangeRequests(type: number, ranges: readonly SectorRange[], unmap: boolean, maxSeg: number, maxSectors: number, queue?: number): Promise<void> {
    const split: SectorRange[] = [];
    for (const r of ranges) {
      this.checkRange(r.sector, r.count * SECTOR_SIZE);
      for (let done = 0; done < r.count; done += maxSectors) split.push({ sector: r.sector + done, count: Math.min(maxSectors, r.count - done) });
    }
    const requests: Promise<void>[] = [];
    for (let i = 0; i < split.length; i += maxSeg) {
      const group = split.slice(i, i + maxSeg);
      const buffer = new DmaBuffer(this.transport.allocator, group.length * 16);
      const bytes = new Uint8Array(group.length * 16);
      const view = new DataView(bytes.buffer);
      group.forEach((r, j) => {
        view.setBigUint64(j * 16, BigInt(r.sector), true);
        view.setUint32(j * 16 + 8, r.count, true);
        view.setUint32(j * 16 + 12, unmap ? 1 : 0, true);
      });
      buffer.write(bytes);
      requests.push(this.request(type, 0, buffer.segments(), [], queue).finally(() => buffer.free()));
    }
    await Promise.all(requests);
  }

  /** One request: header (readable), data, status (writable); rejects on a status other than OK. */
  private async request(type: number, sector: number, readableData: Segment[], writableData: Segment[], queueIndex?: number): Promise<void> {
    const queue = this.pickQueue(queueIndex);
    const frame = new DmaBuffer(this.transport.allocator, 17, 16);
    try {
      const header = new Uint8Array(16);
      const view = new DataView(header.buffer);
      view.setUint32(0, type, true);
      view.setBigUint64(8, BigInt(sector), true);
      frame.write(header);
      frame.write(Uint8Array.of(0xff), 16);
      await queue.submit([...frame.segments(Infinity, 0, 16), ...readableData], [...writableData, ...frame.segments(Infinity, 16, 1)]);
      const status = frame.read(16, 1)[0]!;
      if (status === VIRTIO_BLK_S_OK) return;
      const context = { device: 'blk', sector, status, queue: queue.index };
      if (status === VIRTIO_BLK_S_IOERR) throw new DriverError('IO_ERROR', 'the device reported VIRTIO_BLK_S_IOERR', context);
      if (status === VIRTIO_BLK_S_UNSUPP) throw new DriverError('UNSUPPORTED', 'the device reported VIRTIO_BLK_S_UNSUPP', context);
      throw new DriverError('PROTOCOL', `unknown status byte ${status}`, context);
    } finally {
      frame.free();
    }
  }

  private pickQueue(index?: number): VirtqueueClient {
    if (index !== undefined) {
      const q = this.queues[index];
      if (q === undefined) throw new DriverError('INVALID_ARGUMENT', `queue ${index} is not in use (${this.queues.length} queues)`, { device: 'blk', queue: index });
      return q;
    }
    const q = this.queues[this.nextQueue]!;
    this.nextQueue = (this.nextQueue + 1) % this.queues.length;
    return q;
  }

  /** Splits an I/O into requests of at most seg_max segments of size_max bytes (whole blocks). */
  private pieces(sector: number, length: number): { sector: number; offset: number; length: number }[] {
    const { segMax, sizeMax, blkSize } = this.limits;
    const perRequest = Math.max(blkSize, Math.floor(Math.min(segMax * sizeMax, this.maxRequestBytes) / blkSize) * blkSize);
    const out: { sector: number; offset: number; length: number }[] = [];
    for (let offset = 0; offset < length; offset += perRequest) {
      out.push({ sector: sector + offset / SECTOR_SIZE, offset, length: Math.min(perRequest, length - offset) });
    }
    return out;
  }

  private checkRange(sector: number, length: number): void {
    const { capacity, blkSize } = this.limits;
    const context = { device: 'blk', sector, length };
    if (!Number.isSafeInteger(sector) || sector < 0 || !Number.isSafeInteger(length) || length <= 0) {
      throw new DriverError('INVALID_ARGUMENT', 'sector and length must be non-negative integers (length > 0)', context);
    }
    if ((sector * SECTOR_SIZE) % blkSize !== 0 || length % blkSize !== 0) throw new DriverError('INVALID_ARGUMENT', `not aligned to blk_size ${blkSize}`, context);
    // §5.2.6.1: "A driver MUST NOT submit a request which would cause a read or write beyond capacity."
    if (sector + length / SECTOR_SIZE > capacity) throw new DriverError('INVALID_ARGUMENT', `past capacity (${capacity} sectors)`, context);
  }

  private need(bit: number, name: string): void {
    if (!hasFeature(this.features, bit)) throw new DriverError('UNSUPPORTED', `VIRTIO_BLK_F_${name} was not negotiated`, { device: 'blk' });
  }

  private readLimits(): BlkLimits {
    const bytes = this.transport.readConfig(0, C.size);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const f = this.features;
    const positive = (value: number) => (value > 0 ? value : Number.POSITIVE_INFINITY);
    const blkSize = hasFeature(f, VIRTIO_BLK_F_BLK_SIZE) ? v.getUint32(C.blkSize, true) : SECTOR_SIZE;
    return {
      capacity: Number(v.getBigUint64(C.capacity, true)),
      // A device value that makes no sense falls back to the protocol's own unit.
      blkSize: blkSize >= SECTOR_SIZE && (blkSize & (blkSize - 1)) === 0 ? blkSize : SECTOR_SIZE,
      segMax: hasFeature(f, VIRTIO_BLK_F_SEG_MAX) ? positive(v.getUint32(C.segMax, true)) : Number.POSITIVE_INFINITY,
      sizeMax: hasFeature(f, VIRTIO_BLK_F_SIZE_MAX) ? Math.max(SECTOR_SIZE, v.getUint32(C.sizeMax, true)) : Number.POSITIVE_INFINITY,
      maxDiscardSectors: hasFeature(f, VIRTIO_BLK_F_DISCARD) ? positive(v.getUint32(C.maxDiscardSectors, true)) : 0,
      maxDiscardSeg: hasFeature(f, VIRTIO_BLK_F_DISCARD) ? Math.max(1, v.getUint32(C.maxDiscardSeg, true)) : 0,
      maxWriteZeroesSectors: hasFeature(f, VIRTIO_BLK_F_WRITE_ZEROES) ? positive(v.getUint32(C.maxWriteZeroesSectors, true)) : 0,
      maxWriteZeroesSeg: hasFeature(f, VIRTIO_BLK_F_WRITE_ZEROES) ? Math.max(1, v.getUint32(C.maxWriteZeroesSeg, true)) : 0,
      writeZeroesMayUnmap: hasFeature(f, VIRTIO_BLK_F_WRITE_ZEROES) && v.getUint8(C.writeZeroesMayUnmap) === 1,
    };
  }
}
