import type { BlockDriver } from '@virtio-ts/block';
import { featureBits, hasFeature, type ActivationContext, type Features, type VirtioDevice } from '@virtio-ts/device';
import type { DeviceQueue } from '@virtio-ts/ring';
import { ringFeatures, type RingFeatureOptions } from '../common-features.js';
import { BackendError } from '../errors.js';
import { utf8Encode } from '../web-apis.js';
import { QueueRunner } from '../queue-runner.js';
import { encodeBlkConfig, type BlkConfig } from './config.js';
import {
  BLK_CONFIG,
  SECTOR_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_GEOMETRY,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_ID_BLOCK,
} from './constants.js';
import { BlkMetrics } from './metrics.js';
import { restoreBlkState, saveBlkState, type BlkDeviceState } from './persist.js';
import { BlkQueueHandler } from './queue-handler.js';
import type { RequestLimits } from './request.js';

/** Options of a {@link BlkDevice}. Every limit has a default that Linux's virtio_blk accepts. */
export interface BlkDeviceOptions extends RingFeatureOptions {
  /** The disk. Its `requestAlignment` becomes `blk_size` (at least 512). */
  readonly driver: BlockDriver;
  /** Offer VIRTIO_BLK_F_RO and fail writes. Default: the driver's `readOnly`. */
  readonly readOnly?: boolean;
  /** GET_ID string, ASCII, at most 20 bytes. Default ''. */
  readonly serial?: string;
  /** Request queues (VIRTIO_BLK_F_MQ). Default 1. */
  readonly numQueues?: number;
  /** Maximum size of each queue, a power of two. Default 256. */
  readonly queueSize?: number;
  /** `seg_max`. Default queueSize - 2 (header and status take two descriptors). */
  readonly segMax?: number;
  /** `size_max` in bytes. Default 1 MiB. */
  readonly sizeMax?: number;
  /** Offer VIRTIO_BLK_F_FLUSH (and CONFIG_WCE). Default true. */
  readonly flush?: boolean;
  /** Cache mode after reset when CONFIG_WCE and FLUSH are negotiated. Default true (writeback). */
  readonly writeback?: boolean;
  /** Offer VIRTIO_BLK_F_DISCARD. Default: the driver has `discard` and is writable. */
  readonly discard?: boolean;
  /** Offer VIRTIO_BLK_F_WRITE_ZEROES. Default: writable (emulated with writes without `writeZeroes`). */
  readonly writeZeroes?: boolean;
  readonly maxDiscardSectors?: number;
  readonly maxDiscardSeg?: number;
  readonly maxWriteZeroesSectors?: number;
  readonly maxWriteZeroesSeg?: number;
  /** Offer VIRTIO_BLK_F_GEOMETRY with this CHS geometry. */
  readonly geometry?: { readonly cylinders: number; readonly heads: number; readonly sectors: number };
  /** Topology (VIRTIO_BLK_F_TOPOLOGY, always offered). Default: physical block = blk_size, no hints. */
  readonly topology?: Partial<BlkConfig['topology']>;
}

/** QEMU's BDRV_REQUEST_MAX_SECTORS: 2^31 - 1 bytes in sectors, the default discard/zeroes limit. */
const DEFAULT_MAX_RANGE_SECTORS = 0x3f_ffff;

/**
 * A virtio-blk device (VIRTIO 1.3 §5.2) over any {@link BlockDriver}: IN, OUT, FLUSH, GET_ID,
 * DISCARD, WRITE_ZEROES, several requests in flight per queue, several queues, read-only
 * disks, writeback or writethrough caching. Guest faults become status bytes and counters
 * ({@link BlkDevice.metrics}); a broken ring becomes DEVICE_NEEDS_RESET.
 *
 * @example
 * ```ts
 * const device = new BlkDevice({ driver: memoryDisk, serial: 'disk-0', numQueues: 2 });
 * transport.attach(device);            // pci, mmio or vhost-user: negotiation, queues, DRIVER_OK
 * // ... the guest reads and writes ...
 * await device.drain();                // every request in flight has completed
 * const snapshot = device.saveState(); // with the transport's queue states
 * console.log(JSON.stringify(device.metrics));
 * ```
 */
export class BlkDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = BLK_CONFIG.size;
  readonly metrics = new BlkMetrics();
  readonly driver: BlockDriver;

  private readonly options: Required<Pick<BlkDeviceOptions, 'numQueues' | 'segMax' | 'sizeMax' | 'readOnly' | 'writeback'>>;
  private readonly serial: Uint8Array;
  private readonly alignment: number;
  private readonly limitsBase: Omit<RequestLimits, 'capacitySectors' | 'flush' | 'discard' | 'writeZeroes'>;
  private readonly offered: { flush: boolean; discard: boolean; writeZeroes: boolean; geometry: BlkConfig['geometry'] | undefined };
  private readonly topology: BlkConfig['topology'];
  private readonly rangeLimits: Pick<BlkConfig, 'maxDiscardSectors' | 'maxDiscardSeg' | 'maxWriteZeroesSectors' | 'maxWriteZeroesSeg'>;
  private capacitySectors: number;
  private writebackFlag: number;
  private generationCounter = 0;
  private configGenerationCounter = 0;
  private negotiated: Features = 0n;
  private context: ActivationContext | undefined;
  private handlers: (BlkQueueHandler | undefined)[] = [];
  /** Handlers of earlier activations that may still have BlockDriver calls running. */
  private retired: BlkQueueHandler[] = [];
  private limits!: RequestLimits;

  constructor(options: BlkDeviceOptions) {
    const driver = options.driver;
    this.driver = driver;
    const numQueues = options.numQueues ?? 1;
    const queueSize = options.queueSize ?? 256;
    check(Number.isInteger(numQueues) && numQueues >= 1 && numQueues <= 0xffff, 'numQueues', 'must be 1..65535');
    check(Number.isInteger(queueSize) && queueSize >= 4 && queueSize <= 32768 && (queueSize & (queueSize - 1)) === 0, 'queueSize', 'must be a power of two in 4..32768');
    const segMax = options.segMax ?? queueSize - 2;
    const sizeMax = options.sizeMax ?? 1024 * 1024;
    check(Number.isInteger(segMax) && segMax >= 1 && segMax <= 0xffff_ffff, 'segMax', 'must be a positive 32-bit integer');
    check(Number.isInteger(sizeMax) && sizeMax >= SECTOR_SIZE && sizeMax <= 0xffff_ffff, 'sizeMax', 'must be 512..2^32-1');
    const alignment = Math.max(SECTOR_SIZE, driver.requestAlignment);
    check(alignment <= 4096 && (alignment & (alignment - 1)) === 0, 'driver.requestAlignment', 'must be a power of two up to 4096');
    const serial = utf8Encode(options.serial ?? '');
    check(serial.length <= VIRTIO_BLK_ID_BYTES && [...serial].every((b) => b >= 0x20 && b < 0x7f), 'serial', 'must be printable ASCII of at most 20 bytes');
    this.serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    this.serial.set(serial);
    const readOnly = options.readOnly ?? driver.readOnly;
    const flush = options.flush ?? true;
    const discard = (options.discard ?? driver.discard !== undefined) && !readOnly;
    const writeZeroes = (options.writeZeroes ?? true) && !readOnly;
    check(!(options.discard === true && driver.discard === undefined), 'discard', 'the BlockDriver has no discard');
    const geometry = options.geometry;
    if (geometry !== undefined) {
      check(
        Number.isInteger(geometry.cylinders) && geometry.cylinders >= 0 && geometry.cylinders <= 0xffff &&
          Number.isInteger(geometry.heads) && geometry.heads >= 0 && geometry.heads <= 0xff &&
          Number.isInteger(geometry.sectors) && geometry.sectors >= 0 && geometry.sectors <= 0xff,
        'geometry',
        'cylinders must fit 16 bits, heads and sectors 8 bits',
      );
    }
    this.rangeLimits = {
      maxDiscardSectors: options.maxDiscardSectors ?? DEFAULT_MAX_RANGE_SECTORS,
      maxDiscardSeg: options.maxDiscardSeg ?? 32,
      maxWriteZeroesSectors: options.maxWriteZeroesSectors ?? DEFAULT_MAX_RANGE_SECTORS,
      maxWriteZeroesSeg: options.maxWriteZeroesSeg ?? 32,
    };
    for (const [field, value] of Object.entries(this.rangeLimits)) {
      // Segments are read into one buffer of count * 16 bytes: bound the count.
      const max = field.endsWith('Seg') ? 4096 : 0xffff_ffff;
      check(Number.isInteger(value) && value >= 1 && value <= max, field, `must be 1..${max}`);
    }
    this.topology = {
      physicalBlockExp: options.topology?.physicalBlockExp ?? 0,
      alignmentOffset: options.topology?.alignmentOffset ?? 0,
      minIoSize: options.topology?.minIoSize ?? 1,
      optIoSize: options.topology?.optIoSize ?? 0,
    };
    this.options = { numQueues, segMax, sizeMax, readOnly, writeback: options.writeback ?? true };
    this.offered = { flush, discard, writeZeroes, geometry };
    this.alignment = alignment;
    this.limitsBase = {
      readOnly,
      alignment,
      maxDataBytes: Math.min(segMax * sizeMax, 0xffff_ffff),
      maxDiscardSeg: this.rangeLimits.maxDiscardSeg,
      maxDiscardSectors: this.rangeLimits.maxDiscardSectors,
      maxWriteZeroesSeg: this.rangeLimits.maxWriteZeroesSeg,
      maxWriteZeroesSectors: this.rangeLimits.maxWriteZeroesSectors,
    };
    this.capacitySectors = Math.floor(driver.length / SECTOR_SIZE);
    this.writebackFlag = this.options.writeback ? 1 : 0;
    this.limits = this.computeLimits();

    let features = ringFeatures(options) | featureBits(VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_MQ);
    if (readOnly) features |= featureBits(VIRTIO_BLK_F_RO);
    // §5.2.5.2: devices SHOULD offer FLUSH, and MUST offer it when they offer CONFIG_WCE.
    if (flush) features |= featureBits(VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE);
    if (discard) features |= featureBits(VIRTIO_BLK_F_DISCARD);
    if (writeZeroes) features |= featureBits(VIRTIO_BLK_F_WRITE_ZEROES);
    if (geometry !== undefined) features |= featureBits(VIRTIO_BLK_F_GEOMETRY);
    this.deviceFeatures = features;
    this.queueMaxSizes = Array.from({ length: numQueues }, () => queueSize);
  }

  get configGeneration(): number {
    return this.configGenerationCounter;
  }

  /** Disk size in 512-byte sectors, as the config space shows it. */
  get capacity(): number {
    return this.capacitySectors;
  }

  /** The cache mode now: true for writeback (§5.2.5 `writeback`). */
  get writeback(): boolean {
    return this.writebackFlag === 1;
  }

  /** Requests started and not completed, over all queues. */
  get inFlight(): number {
    return this.handlers.reduce((n, h) => n + (h?.inFlight ?? 0), 0);
  }

  /** The configuration space as the driver sees it now. */
  config(): BlkConfig {
    return {
      capacity: this.capacitySectors,
      sizeMax: this.options.sizeMax,
      segMax: this.options.segMax,
      geometry: this.offered.geometry ?? { cylinders: 0, heads: 0, sectors: 0 },
      blkSize: this.alignment,
      topology: this.topology,
      writeback: this.writebackFlag,
      numQueues: this.options.numQueues,
      maxDiscardSectors: this.offered.discard ? this.rangeLimits.maxDiscardSectors : 0,
      maxDiscardSeg: this.offered.discard ? this.rangeLimits.maxDiscardSeg : 0,
      discardSectorAlignment: this.offered.discard ? this.alignment / SECTOR_SIZE : 0,
      maxWriteZeroesSectors: this.offered.writeZeroes ? this.rangeLimits.maxWriteZeroesSectors : 0,
      maxWriteZeroesSeg: this.offered.writeZeroes ? this.rangeLimits.maxWriteZeroesSeg : 0,
      // §5.2.6.2: set iff a write zeroes request can deallocate.
      writeZeroesMayUnmap: this.offered.writeZeroes && this.driver.writeZeroes !== undefined ? 1 : 0,
    };
  }

  readConfig(offset: number, data: Uint8Array): void {
    const bytes = encodeBlkConfig(this.config());
    data.set(bytes.subarray(offset, offset + data.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.metrics.configWrites++;
    // §5.2.5: only `writeback` is writable, and only with CONFIG_WCE negotiated.
    if (offset === BLK_CONFIG.writeback && data.length === 1 && hasFeature(this.negotiated, VIRTIO_BLK_F_CONFIG_WCE)) {
      this.writebackFlag = data[0] === 0 ? 0 : 1;
      return;
    }
    this.metrics.ignoredConfigWrites++;
  }

  validateFeatures(features: Features): boolean {
    this.negotiated = features;
    // §5.2.5.2: CONFIG_WCE negotiated without FLUSH: writeback MUST start at 0.
    if (hasFeature(features, VIRTIO_BLK_F_CONFIG_WCE) && !hasFeature(features, VIRTIO_BLK_F_FLUSH)) this.writebackFlag = 0;
    return true;
  }

  activate(context: ActivationContext): void {
    this.context = context;
    this.negotiated = context.features;
    const f = context.features;
    if (hasFeature(f, VIRTIO_BLK_F_CONFIG_WCE) && !hasFeature(f, VIRTIO_BLK_F_FLUSH)) this.writebackFlag = 0;
    this.limits = this.computeLimits();
    // §5.2.2: one queue unless MQ is negotiated.
    const active = hasFeature(f, VIRTIO_BLK_F_MQ) ? this.options.numQueues : 1;
    this.handlers = context.queues.map((queue, index) => (queue !== null && index < active ? this.handlerFor(index, queue, context) : undefined));
  }

  queueNotify(index: number): void {
    this.handlers[index]?.notify();
  }

  reset(): void {
    // In-flight completions of the old generation are dropped, never pushed to a reset ring.
    this.generationCounter++;
    for (const h of this.handlers) {
      if (h === undefined) continue;
      h.detach();
      if (h.inFlight > 0) this.retired.push(h);
    }
    this.handlers = [];
    this.context = undefined;
    this.negotiated = 0n;
    this.writebackFlag = this.options.writeback ? 1 : 0;
  }

  /**
   * Resolves when every request in flight has completed (before a snapshot or a shutdown),
   * including requests of an earlier activation whose completions a reset dropped.
   */
  async drain(): Promise<void> {
    const all = [...this.handlers.filter((h): h is BlkQueueHandler => h !== undefined), ...this.retired];
    await Promise.all(all.map((h) => h.drain()));
    this.retired = this.retired.filter((h) => h.inFlight > 0);
  }

  /**
   * The host changed the disk size (`driver.length`): updates `capacity` and sends a
   * configuration change notification (§5.2.6.2: SHOULD).
   */
  refreshCapacity(): void {
    const capacity = Math.floor(this.driver.length / SECTOR_SIZE);
    if (capacity === this.capacitySectors) return;
    this.capacitySectors = capacity;
    this.configGenerationCounter++;
    // Requests parsed from now on see the new capacity.
    this.limits = this.computeLimits();
    this.context?.interrupt.signalConfig();
  }

  saveState(): BlkDeviceState {
    return saveBlkState({ writeback: this.writebackFlag === 1, capacity: this.capacitySectors, configGeneration: this.configGenerationCounter, metrics: this.metrics });
  }

  restoreState(state: unknown): void {
    const s = restoreBlkState(state, { capacity: this.capacitySectors });
    this.writebackFlag = s.writeback ? 1 : 0;
    this.configGenerationCounter = s.configGeneration;
  }

  private computeLimits(): RequestLimits {
    return {
      ...this.limitsBase,
      capacitySectors: this.capacitySectors,
      flush: this.offered.flush,
      discard: hasFeature(this.negotiated, VIRTIO_BLK_F_DISCARD),
      writeZeroes: hasFeature(this.negotiated, VIRTIO_BLK_F_WRITE_ZEROES),
    };
  }

  private writethrough(): boolean {
    const f = this.negotiated;
    // §5.2.6.2: stable on completion when FLUSH was offered but neither FLUSH nor CONFIG_WCE
    // negotiated (case 1), or CONFIG_WCE negotiated with writeback = 0 (case 2).
    if (!this.offered.flush) return false;
    if (hasFeature(f, VIRTIO_BLK_F_CONFIG_WCE)) return this.writebackFlag === 0;
    return !hasFeature(f, VIRTIO_BLK_F_FLUSH);
  }

  private handlerFor(index: number, queue: DeviceQueue, context: ActivationContext): BlkQueueHandler {
    const metrics = this.metrics;
    const runner = new QueueRunner(
      index,
      queue,
      context,
      {
        ringError: () => metrics.ringErrors++,
        needsReset: () => metrics.needsReset++,
        interrupt: () => metrics.interrupts++,
      },
      () => handler.resume(),
    );
    const handler = new BlkQueueHandler(runner, {
      memory: context.memory,
      driver: this.driver,
      limits: () => this.limits,
      serial: this.serial,
      metrics,
      writethrough: () => this.writethrough(),
      generation: () => this.generationCounter,
    });
    return handler;
  }
}

function check(condition: boolean, field: string, message: string): asserts condition {
  if (!condition) throw new BackendError('INVALID_OPTION', `blk option ${field} ${message}`, { device: 'blk', field });
}
