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
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VirtqueueClient } from '../virtqueue-client.js';
import { utf8Decode } from '../web-apis.js';
import {
  SAM_STAT_CHECK_CONDITION,
  SAM_STAT_GOOD,
  SCSI_CONFIG_OFFSETS as C,
  SENSE_UNIT_ATTENTION,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_SENSE_SIZE,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
} from './constants.js';
import * as cmd from './scsi-commands.js';

/** Options of {@link ScsiDriver.open}. */
export interface ScsiDriverOptions {
  /** Request queues to use (at most `num_queues`). Default: all. */
  readonly queues?: number;
  /** Queue size. Default: the device's maximum. */
  readonly queueSize?: number;
  /** Targets scanned, from 0 (bounded by `max_target`). Default 8. */
  readonly scanTargets?: number;
  /** Event buffers kept available (§5.6.6.3). Default 8. */
  readonly eventBuffers?: number;
  /** Features left out of negotiation (a mask). */
  readonly exclude?: Features;
}

/** A LUN address (§5.6.6.1). */
export interface ScsiAddress {
  readonly target: number;
  readonly lun: number;
}

/** The outcome of one command (§5.6.6.1 `virtio_scsi_resp_cmd`). */
export interface ScsiResponse {
  /** virtio response code (VIRTIO_SCSI_S_*). */
  readonly response: number;
  /** SAM status. */
  readonly status: number;
  /** Sense key/ASC/ASCQ from fixed or descriptor sense data, when there was any. */
  readonly sense?: { readonly key: number; readonly asc: number; readonly ascq: number };
  readonly residual: number;
  /** Data-in bytes (the buffer minus the residual). */
  readonly data: Uint8Array;
}

/** An event from the event queue, decoded. */
export interface ScsiEvent {
  readonly event: number;
  readonly address: ScsiAddress | undefined;
  readonly reason: number;
  readonly missed: boolean;
}

const SUPPORTED = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_SCSI_F_HOTPLUG, VIRTIO_SCSI_F_CHANGE);

function lunBytes(a: ScsiAddress): Uint8Array {
  // §5.6.6.1: lun[0] = 1, lun[1] = target, lun[2..3] = flat space addressing.
  return Uint8Array.of(1, a.target, 0x40 | ((a.lun >> 8) & 0x3f), a.lun & 0xff, 0, 0, 0, 0);
}

function decodeSense(bytes: Uint8Array): ScsiResponse['sense'] {
  const code = (bytes[0] ?? 0) & 0x7f;
  if ((code === 0x70 || code === 0x71) && bytes.length >= 14) return { key: bytes[2]! & 0xf, asc: bytes[12]!, ascq: bytes[13]! };
  if ((code === 0x72 || code === 0x73) && bytes.length >= 4) return { key: bytes[1]! & 0xf, asc: bytes[2]!, ascq: bytes[3]! };
  return undefined;
}

/**
 * A virtio-scsi front-end driver model (VIRTIO 1.3 §5.6), like Linux's virtio_scsi with sd on
 * top: negotiates, keeps event buffers posted, scans targets (REPORT LUNS, INQUIRY, READ
 * CAPACITY(16)) and exposes each LUN as a {@link ScsiDisk} with read/write/flush/discard.
 * Hotplug events (RESCAN/REMOVED, EVENTS_MISSED) and capacity changes update {@link disks}.
 *
 * @example
 * ```ts
 * const hba = await ScsiDriver.open(transport);             // scans targets 0..7
 * const disk = hba.disk(0, 0)!;
 * await disk.write(8, new Uint8Array(4096).fill(7));        // LBA 8
 * const back = await disk.read(8, 8);                       // 8 blocks
 * await disk.flush();                                       // SYNCHRONIZE CACHE(16)
 * console.log(disk.vendor, disk.product, disk.serial, disk.blocks);
 * ```
 */
export class ScsiDriver {
  readonly features: Features;
  /** Every LUN found, keyed `target:lun`. */
  readonly disks = new Map<string, ScsiDisk>();
  /** Events received (most recent last, at most 64 kept). */
  readonly events: ScsiEvent[] = [];
  private readonly control: VirtqueueClient;
  private readonly eventQueue: VirtqueueClient;
  private readonly requests: VirtqueueClient[];
  private nextQueue = 0;
  private nextTag = 1n;
  private readonly senseSize: number;
  private readonly cdbSize: number;
  private readonly scanTargets: number;
  private closed = false;
  private work: Promise<void> = Promise.resolve();

  private constructor(
    readonly transport: VirtioTransport,
    features: Features,
    queues: { control: VirtqueueClient; event: VirtqueueClient; requests: VirtqueueClient[] },
    scanTargets: number,
  ) {
    this.features = features;
    this.control = queues.control;
    this.eventQueue = queues.event;
    this.requests = queues.requests;
    this.senseSize = this.configU32(C.senseSize);
    this.cdbSize = this.configU32(C.cdbSize);
    this.scanTargets = Math.min(scanTargets, this.configU16(C.maxTarget) + 1);
  }

  /** Initialises the device (§3.1.1), posts event buffers and scans. */
  static async open(transport: VirtioTransport, options: ScsiDriverOptions = {}): Promise<ScsiDriver> {
    const features = negotiateFeatures(transport, SUPPORTED & ~(options.exclude ?? 0n));
    // §5.6.4: the driver may set cdb_size and sense_size; write the defaults as Linux does.
    transport.writeConfig(C.cdbSize, u32(VIRTIO_SCSI_CDB_SIZE));
    transport.writeConfig(C.senseSize, u32(VIRTIO_SCSI_SENSE_SIZE));
    const numQueues = new DataView(transport.readConfig(C.numQueues, 4).buffer).getUint32(0, true);
    const count = Math.max(1, Math.min(numQueues, options.queues ?? numQueues, transport.numQueues - 2));
    const size = options.queueSize !== undefined ? { size: options.queueSize } : {};
    const queues = {
      control: new VirtqueueClient(transport, 0, size),
      event: new VirtqueueClient(transport, 1, size),
      requests: Array.from({ length: count }, (_, i) => new VirtqueueClient(transport, 2 + i, size)),
    };
    setDriverOk(transport);
    const driver = new ScsiDriver(transport, features, queues, options.scanTargets ?? 8);
    for (let i = 0; i < (options.eventBuffers ?? 8); i++) driver.postEventBuffer();
    await driver.scan();
    return driver;
  }

  /** The disk at an address, if the scan found one. */
  disk(target: number, lun: number): ScsiDisk | undefined {
    return this.disks.get(`${target}:${lun}`);
  }

  /** Resolves when event handling started so far (rescans) has finished. */
  async settled(): Promise<void> {
    let before: Promise<void>;
    do {
      before = this.work;
      await before;
    } while (before !== this.work);
  }

  /** Scans every target: REPORT LUNS on LUN 0, then probes each LUN. Removes disks no longer reported. */
  async scan(): Promise<void> {
    const found = new Set<string>();
    for (let target = 0; target < this.scanTargets; target++) {
      const r = await this.command({ target, lun: 0 }, cmd.reportLuns(4096), { dataIn: 4096 });
      if (r.response === VIRTIO_SCSI_S_BAD_TARGET || r.status !== SAM_STAT_GOOD) continue;
      const v = new DataView(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      const count = Math.min(Math.floor(v.getUint32(0) / 8), Math.floor((r.data.length - 8) / 8));
      for (let i = 0; i < count; i++) {
        const b = r.data.subarray(8 + i * 8, 16 + i * 8);
        const lun = ((b[0]! & 0x3f) << 8) | b[1]!;
        if (await this.probe({ target, lun })) found.add(`${target}:${lun}`);
      }
    }
    for (const key of [...this.disks.keys()]) if (!found.has(key)) this.disks.delete(key);
  }

  /** INQUIRY + READ CAPACITY(16) (+ VPD 0x80, MODE SENSE WP) of one LUN; adds it as a disk. */
  private async probe(address: ScsiAddress): Promise<boolean> {
    const inq = await this.command(address, cmd.inquiry(96), { dataIn: 96 });
    if (inq.status !== SAM_STAT_GOOD || inq.data.length < 36 || inq.data[0] !== 0) return false;
    const text = (b: Uint8Array) => utf8Decode(b).trimEnd();
    const serialPage = await this.command(address, cmd.inquiry(255, 0x80), { dataIn: 255 });
    const serial = serialPage.status === SAM_STAT_GOOD && serialPage.data.length >= 4 ? text(serialPage.data.subarray(4, 4 + serialPage.data[3]!)) : '';
    const existing = this.disk(address.target, address.lun);
    const disk = existing ?? new ScsiDisk(this, address, text(inq.data.subarray(8, 16)), text(inq.data.subarray(16, 32)), serial);
    await disk.refresh();
    this.disks.set(`${address.target}:${address.lun}`, disk);
    return true;
  }

  /**
   * Sends one command on a request queue (§5.6.6.1). Data is copied into and out of driver
   * buffers; `dataIn` is the data-in buffer size.
   */
  async command(address: ScsiAddress, cdb: Uint8Array, io: { dataIn?: number; dataOut?: Uint8Array; tag?: bigint; queue?: number } = {}): Promise<ScsiResponse> {
    if (cdb.length > this.cdbSize) throw new DriverError('INVALID_ARGUMENT', `CDB of ${cdb.length} bytes exceeds cdb_size ${this.cdbSize}`, { device: 'scsi' });
    const queue = this.pickQueue(io.queue);
    const headerLength = 19 + this.cdbSize;
    const responseLength = 12 + this.senseSize;
    const header = new DmaBuffer(this.transport.allocator, headerLength);
    const response = new DmaBuffer(this.transport.allocator, responseLength);
    const dataOut = io.dataOut !== undefined && io.dataOut.length > 0 ? new DmaBuffer(this.transport.allocator, io.dataOut.length) : undefined;
    const dataIn = io.dataIn !== undefined && io.dataIn > 0 ? new DmaBuffer(this.transport.allocator, io.dataIn) : undefined;
    try {
      const h = new Uint8Array(headerLength);
      h.set(lunBytes(address));
      new DataView(h.buffer).setBigUint64(8, io.tag ?? this.nextTag++, true);
      h.set(cdb, 19);
      header.write(h);
      response.write(new Uint8Array(responseLength));
      if (dataOut !== undefined) dataOut.write(io.dataOut!);
      await queue.submit([...header.segments(), ...(dataOut?.segments() ?? [])], [...response.segments(), ...(dataIn?.segments() ?? [])]);
      const r = response.read();
      const v = new DataView(r.buffer);
      const senseLength = Math.min(v.getUint32(0, true), this.senseSize);
      const residual = v.getUint32(4, true);
      const status = r[10]!;
      const code = r[11]!;
      const inLength = dataIn === undefined || code !== VIRTIO_SCSI_S_OK ? 0 : Math.max(0, dataIn.length - Math.min(residual, dataIn.length));
      const sense = senseLength > 0 ? decodeSense(r.subarray(12, 12 + senseLength)) : undefined;
      return { response: code, status, residual, data: dataIn !== undefined ? dataIn.read(0, inLength) : new Uint8Array(0), ...(sense !== undefined ? { sense } : {}) };
    } finally {
      header.free();
      response.free();
      dataOut?.free();
      dataIn?.free();
    }
  }

  /**
   * A command that must succeed: retried on UNIT ATTENTION (as sd does, at most 3 times);
   * anything else but GOOD rejects with IO_ERROR (or UNSUPPORTED for ILLEGAL REQUEST).
   */
  async checked(address: ScsiAddress, cdb: Uint8Array, io: { dataIn?: number; dataOut?: Uint8Array } = {}): Promise<ScsiResponse> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.command(address, cdb, io);
      if (r.response === VIRTIO_SCSI_S_OK && r.status === SAM_STAT_GOOD) return r;
      const context = { device: 'scsi', status: r.status };
      if (r.response !== VIRTIO_SCSI_S_OK) throw new DriverError('IO_ERROR', `virtio-scsi response ${r.response}`, context);
      if (r.status === SAM_STAT_CHECK_CONDITION && r.sense?.key === SENSE_UNIT_ATTENTION && attempt < 3) {
        if (r.sense.asc === 0x2a && r.sense.ascq === 0x09) this.disk(address.target, address.lun)?.markStale();
        continue;
      }
      const sense = r.sense !== undefined ? ` sense ${r.sense.key.toString(16)}/${r.sense.asc.toString(16)}/${r.sense.ascq.toString(16)}` : '';
      throw new DriverError(r.sense?.key === 0x5 ? 'UNSUPPORTED' : r.sense?.key === 0x7 ? 'READ_ONLY' : 'IO_ERROR', `SCSI status ${r.status}${sense}`, context);
    }
  }

  /** A task management function (§5.6.6.2.1); resolves with the response byte. */
  async taskManagement(subtype: number, address: ScsiAddress, tag = 0n): Promise<number> {
    const request = new DmaBuffer(this.transport.allocator, 24);
    const response = new DmaBuffer(this.transport.allocator, 1);
    try {
      const b = new Uint8Array(24);
      const v = new DataView(b.buffer);
      v.setUint32(0, VIRTIO_SCSI_T_TMF, true);
      v.setUint32(4, subtype, true);
      b.set(lunBytes(address), 8);
      v.setBigUint64(16, tag, true);
      request.write(b);
      response.write(Uint8Array.of(0xff));
      await this.control.submit(request.segments(), response.segments());
      return response.read()[0]!;
    } finally {
      request.free();
      response.free();
    }
  }

  /** Resets the device; pending requests reject with DEVICE_RESET. */
  reset(): void {
    this.closed = true;
    for (const q of [this.control, this.eventQueue, ...this.requests]) q.close();
    this.transport.reset();
  }

  private postEventBuffer(): void {
    if (this.closed) return;
    const buffer = new DmaBuffer(this.transport.allocator, 16);
    this.eventQueue.submit([], buffer.segments()).then(
      (length) => {
        const bytes = buffer.read();
        buffer.free();
        if (length >= 16) this.onEvent(bytes);
        this.postEventBuffer();
      },
      () => buffer.free(),
    );
  }

  private onEvent(bytes: Uint8Array): void {
    const v = new DataView(bytes.buffer, bytes.byteOffset, 16);
    const raw = v.getUint32(0, true);
    const address = bytes[4] === 1 ? { target: bytes[5]!, lun: ((bytes[6]! & 0x3f) << 8) | bytes[7]! } : undefined;
    const event: ScsiEvent = { event: (raw & ~VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0, address, reason: v.getUint32(12, true), missed: (raw & VIRTIO_SCSI_T_EVENTS_MISSED) !== 0 };
    this.events.push(event);
    if (this.events.length > 64) this.events.shift();
    // Handle events one after another (like Linux's event work queue).
    this.work = this.work.then(() => this.handle(event)).catch(() => undefined);
  }

  private async handle(e: ScsiEvent): Promise<void> {
    if (this.closed) return;
    if (e.missed) return this.scan(); // §5.6.6.3: events were lost: rescan everything
    if (e.address === undefined) return;
    if (e.event === VIRTIO_SCSI_T_TRANSPORT_RESET && e.reason === VIRTIO_SCSI_EVT_RESET_RESCAN) {
      await this.probe(e.address);
    } else if (e.event === VIRTIO_SCSI_T_TRANSPORT_RESET && e.reason === VIRTIO_SCSI_EVT_RESET_REMOVED) {
      this.disks.delete(`${e.address.target}:${e.address.lun}`);
    } else if (e.event === VIRTIO_SCSI_T_PARAM_CHANGE) {
      // §5.6.6.3.3: ASC in the low byte, ASCQ in the next; 2Ah/09h: capacity changed.
      if ((e.reason & 0xff) === 0x2a) await this.disk(e.address.target, e.address.lun)?.refresh();
    }
  }

  private pickQueue(index?: number): VirtqueueClient {
    if (index !== undefined) {
      const q = this.requests[index];
      if (q === undefined) throw new DriverError('INVALID_ARGUMENT', `request queue ${index} is not in use`, { device: 'scsi', queue: index });
      return q;
    }
    const q = this.requests[this.nextQueue]!;
    this.nextQueue = (this.nextQueue + 1) % this.requests.length;
    return q;
  }

  private configU32(offset: number): number {
    return new DataView(this.transport.readConfig(offset, 4).buffer).getUint32(0, true);
  }

  private configU16(offset: number): number {
    return new DataView(this.transport.readConfig(offset, 2).buffer).getUint16(0, true);
  }

  /** True when a feature was negotiated. */
  has(bit: number): boolean {
    return hasFeature(this.features, bit);
  }
}

function u32(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value, true);
  return b;
}

/**
 * One LUN as a block device (what sd makes of it): logical blocks, READ(16)/WRITE(16),
 * SYNCHRONIZE CACHE(16) and UNMAP, split to the device's transfer limit.
 */
export class ScsiDisk {
  /** Logical block size in bytes (READ CAPACITY(16)). */
  blockSize = 512;
  /** Number of logical blocks. */
  blocks = 0;
  /** UNMAP supported (LBPME). */
  thinProvisioned = false;
  /** Write protected (MODE SENSE WP). */
  readOnly = false;
  /** Largest blocks per READ/WRITE (VPD 0xB0 MAXIMUM TRANSFER LENGTH, capped to 1 MiB). */
  maxTransferBlocks = 2048;
  private stale = false;

  constructor(
    private readonly hba: ScsiDriver,
    readonly address: ScsiAddress,
    readonly vendor: string,
    readonly product: string,
    readonly serial: string,
  ) {}

  /** Re-reads capacity, protection and limits (after a CAPACITY DATA HAS CHANGED). */
  async refresh(): Promise<void> {
    const cap = await this.hba.checked(this.address, cmd.readCapacity16(), { dataIn: 32 });
    const v = new DataView(cap.data.buffer, cap.data.byteOffset, cap.data.byteLength);
    this.blocks = Number(v.getBigUint64(0)) + 1;
    this.blockSize = v.getUint32(8);
    this.thinProvisioned = (cap.data[14]! & 0x80) !== 0;
    const mode = await this.hba.checked(this.address, cmd.modeSense10(0x3f, 255), { dataIn: 255 });
    this.readOnly = (mode.data[3]! & 0x80) !== 0;
    const limits = await this.hba.command(this.address, cmd.inquiry(64, 0xb0), { dataIn: 64 });
    if (limits.status === SAM_STAT_GOOD && limits.data.length >= 12) {
      const max = new DataView(limits.data.buffer, limits.data.byteOffset).getUint32(8);
      this.maxTransferBlocks = Math.max(1, Math.min(max > 0 ? max : Infinity, Math.floor((1 << 20) / this.blockSize)));
    }
    this.stale = false;
  }

  /** @internal the device reported CAPACITY DATA HAS CHANGED. */
  markStale(): void {
    this.stale = true;
  }

  /** Reads `count` blocks from `lba`. */
  async read(lba: number, count: number): Promise<Uint8Array> {
    await this.ensureFresh();
    this.checkRange(lba, count);
    const out = new Uint8Array(count * this.blockSize);
    await Promise.all(
      this.pieces(lba, count).map(async (p) => {
        const r = await this.hba.checked(this.address, cmd.readWrite16(false, p.lba, p.count), { dataIn: p.count * this.blockSize });
        if (r.data.length !== p.count * this.blockSize) throw new DriverError('PROTOCOL', `short read: ${r.data.length} bytes`, { device: 'scsi' });
        out.set(r.data, (p.lba - lba) * this.blockSize);
      }),
    );
    return out;
  }

  /** Writes whole blocks at `lba`. */
  async write(lba: number, data: Uint8Array, options: { fua?: boolean } = {}): Promise<void> {
    await this.ensureFresh();
    if (data.length % this.blockSize !== 0) throw new DriverError('INVALID_ARGUMENT', `length ${data.length} is not a multiple of ${this.blockSize}`, { device: 'scsi' });
    if (this.readOnly) throw new DriverError('READ_ONLY', 'the LUN is write protected', { device: 'scsi' });
    const count = data.length / this.blockSize;
    this.checkRange(lba, count);
    await Promise.all(
      this.pieces(lba, count).map((p) => {
        const start = (p.lba - lba) * this.blockSize;
        return this.hba.checked(this.address, cmd.readWrite16(true, p.lba, p.count, options.fua), { dataOut: data.subarray(start, start + p.count * this.blockSize) });
      }),
    );
  }

  /** SYNCHRONIZE CACHE(16) of the whole medium. */
  async flush(): Promise<void> {
    await this.hba.checked(this.address, cmd.synchronizeCache16());
  }

  /** UNMAP of a range (needs LBPME). */
  async discard(lba: number, count: number): Promise<void> {
    if (!this.thinProvisioned) throw new DriverError('UNSUPPORTED', 'the LUN does not support UNMAP', { device: 'scsi' });
    this.checkRange(lba, count);
    const list = cmd.unmapParameterList([{ lba, blocks: count }]);
    await this.hba.checked(this.address, cmd.unmap(list.length), { dataOut: list });
  }

  private async ensureFresh(): Promise<void> {
    if (this.stale) await this.refresh();
  }

  private checkRange(lba: number, count: number): void {
    if (!Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(count) || count <= 0 || lba + count > this.blocks) {
      throw new DriverError('INVALID_ARGUMENT', `blocks ${lba}+${count} outside the ${this.blocks}-block LUN`, { device: 'scsi' });
    }
  }

  private pieces(lba: number, count: number): { lba: number; count: number }[] {
    const out: { lba: number; count: number }[] = [];
    for (let done = 0; done < count; done += this.maxTransferBlocks) out.push({ lba: lba + done, count: Math.min(this.maxTransferBlocks, count - done) });
    return out;
  }
}
