import { featureBits, hasFeature, VIRTIO_ID_SCSI, type ActivationContext, type Features, type VirtioDevice } from '@virtio-ts/device';
import type { DescriptorChain, DeviceQueue } from '@virtio-ts/ring';
import { gather, scatter, segmentViews, sliceSegments, totalLength } from '../chain-io.js';
import { ringFeatures, type RingFeatureOptions } from '../common-features.js';
import { BackendError } from '../errors.js';
import { QueueRunner } from '../queue-runner.js';
import { encodeScsiConfig, type ScsiConfig } from './config.js';
import {
  SAM_STAT_CHECK_CONDITION,
  SAM_STAT_GOOD,
  SCSI_CMD_HEADER_SIZE,
  SCSI_CONFIG,
  SCSI_CONTROL_QUEUE,
  SCSI_EVENT_QUEUE,
  SCSI_FIRST_REQUEST_QUEUE,
  SCSI_MAX_LUN,
  SCSI_RESP_HEADER_SIZE,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_EVENT_SIZE,
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_F_INOUT,
  VIRTIO_SCSI_MAX_CDB_SIZE,
  VIRTIO_SCSI_MAX_SENSE_SIZE,
  VIRTIO_SCSI_S_ABORTED,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_FAILURE,
  VIRTIO_SCSI_S_FUNCTION_COMPLETE,
  VIRTIO_SCSI_S_FUNCTION_REJECTED,
  VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
  VIRTIO_SCSI_S_INCORRECT_LUN,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_S_OVERRUN,
  VIRTIO_SCSI_SENSE_SIZE,
  VIRTIO_SCSI_T_AN_QUERY,
  VIRTIO_SCSI_T_AN_SUBSCRIBE,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_T_NO_EVENT,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_TMF_ABORT_TASK,
  VIRTIO_SCSI_T_TMF_ABORT_TASK_SET,
  VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET,
  VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET,
  VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
  VIRTIO_SCSI_T_TMF_QUERY_TASK,
  VIRTIO_SCSI_T_TMF_QUERY_TASK_SET,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
} from './constants.js';
import type { ScsiFault } from './errors.js';
import { executeWithoutUnit, ScsiLogicalUnit, type ScsiCommandResult, type ScsiLogicalUnitOptions, type ScsiTargetView } from './logical-unit.js';
import { decodeLunAddress, encodeLunAddress, type LunAddress } from './lun-address.js';
import { ScsiMetrics } from './metrics.js';
import { restoreScsiState, type ScsiDeviceState } from './persist.js';
import { SENSE } from './sense.js';

/** One logical unit of a {@link ScsiDevice}: its address and the unit (or the options to build it). */
export interface ScsiLunOptions extends LunAddress {
  readonly unit: ScsiLogicalUnit | ScsiLogicalUnitOptions;
}

/** Options of a {@link ScsiDevice}. */
export interface ScsiDeviceOptions extends RingFeatureOptions {
  /** Logical units present at start. Default none. */
  readonly luns?: readonly ScsiLunOptions[];
  /** Request queues (`num_queues`). Default 1. */
  readonly numQueues?: number;
  /** Maximum size of each queue, a power of two. Default 256. */
  readonly queueSize?: number;
  /** `seg_max`. Default queueSize - 2. */
  readonly segMax?: number;
  /** `max_sectors` (512-byte units per command). Default 0xFFFF. */
  readonly maxSectors?: number;
  /** `cmd_per_lun`. Default 128. */
  readonly cmdPerLun?: number;
  /** `max_target`. Default 255. */
  readonly maxTarget?: number;
  /** `max_lun`. Default 16383 (flat space addressing). */
  readonly maxLun?: number;
  /** Offer VIRTIO_SCSI_F_HOTPLUG. Default true. */
  readonly hotplug?: boolean;
  /** Offer VIRTIO_SCSI_F_CHANGE (capacity change events). Default true. */
  readonly change?: boolean;
}

interface Task {
  readonly target: number;
  readonly lun: number;
  readonly tag: bigint;
  aborted: boolean;
  done: Promise<void>;
}

/**
 * A virtio-scsi host adapter (VIRTIO 1.3 §5.6) with targets and LUNs, each LUN a
 * {@link ScsiLogicalUnit} over a BlockDriver: request queues run SCSI commands concurrently;
 * the control queue answers task management (ABORT TASK, ABORT/CLEAR TASK SET, LOGICAL UNIT
 * RESET, I_T NEXUS RESET, QUERY TASK/TASK SET) and asynchronous notification query/subscribe;
 * the event queue carries hotplug (TRANSPORT_RESET RESCAN/REMOVED) and capacity change
 * (PARAM_CHANGE) events, with EVENTS_MISSED when the driver left no buffer.
 *
 * @example
 * ```ts
 * const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: disk, serial: 'disk-0' } }] });
 * transport.attach(device);                      // pci, mmio or vhost-user
 * device.addLun(0, 1, { driver: otherDisk });    // hotplug: RESCAN event, REPORTED LUNS DATA HAS CHANGED
 * await device.drain();
 * ```
 */
export class ScsiDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_SCSI;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = SCSI_CONFIG.size;
  readonly metrics = new ScsiMetrics();

  private readonly settings: Omit<ScsiConfig, 'senseSize' | 'cdbSize' | 'eventInfoSize'>;
  private readonly units = new Map<number, ScsiLogicalUnit>();
  private senseSize = VIRTIO_SCSI_SENSE_SIZE;
  private cdbSize = VIRTIO_SCSI_CDB_SIZE;
  private generationCounter = 0;
  private context: ActivationContext | undefined;
  private runners: (QueueRunner | undefined)[] = [];
  private readonly tasks = new Set<Task>();
  private readonly pending = new Set<Promise<void>>();
  private eventsMissed = false;

  constructor(options: ScsiDeviceOptions = {}) {
    const numQueues = options.numQueues ?? 1;
    const queueSize = options.queueSize ?? 256;
    check(Number.isInteger(numQueues) && numQueues >= 1 && numQueues <= 1024, 'numQueues', 'must be 1..1024');
    check(Number.isInteger(queueSize) && queueSize >= 4 && queueSize <= 32768 && (queueSize & (queueSize - 1)) === 0, 'queueSize', 'must be a power of two in 4..32768');
    const settings = {
      numQueues,
      segMax: options.segMax ?? queueSize - 2,
      maxSectors: options.maxSectors ?? 0xffff,
      cmdPerLun: options.cmdPerLun ?? 128,
      maxChannel: 0,
      maxTarget: options.maxTarget ?? 255,
      maxLun: options.maxLun ?? SCSI_MAX_LUN,
    };
    check(Number.isInteger(settings.segMax) && settings.segMax >= 1 && settings.segMax <= 0xffff_ffff, 'segMax', 'must be a positive 32-bit integer');
    check(Number.isInteger(settings.maxSectors) && settings.maxSectors >= 8 && settings.maxSectors <= 0x20_0000, 'maxSectors', 'must be 8..2^21');
    check(Number.isInteger(settings.cmdPerLun) && settings.cmdPerLun >= 1 && settings.cmdPerLun <= 0xffff_ffff, 'cmdPerLun', 'must be positive');
    check(Number.isInteger(settings.maxTarget) && settings.maxTarget >= 0 && settings.maxTarget <= 255, 'maxTarget', 'must be 0..255');
    check(Number.isInteger(settings.maxLun) && settings.maxLun >= 0 && settings.maxLun <= SCSI_MAX_LUN, 'maxLun', 'must be 0..16383');
    this.settings = settings;
    for (const l of options.luns ?? []) this.insert(l.target, l.lun, l.unit);
    let features = ringFeatures(options);
    if (options.hotplug ?? true) features |= featureBits(VIRTIO_SCSI_F_HOTPLUG);
    if (options.change ?? true) features |= featureBits(VIRTIO_SCSI_F_CHANGE);
    this.deviceFeatures = features;
    this.queueMaxSizes = Array.from({ length: SCSI_FIRST_REQUEST_QUEUE + numQueues }, () => queueSize);
  }

  readonly configGeneration = 0;

  /** Commands and control requests started and not completed. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** The configuration space as the driver sees it now. */
  config(): ScsiConfig {
    return { ...this.settings, eventInfoSize: VIRTIO_SCSI_EVENT_SIZE, senseSize: this.senseSize, cdbSize: this.cdbSize };
  }

  /** The logical unit at an address, if any. */
  unit(target: number, lun: number): ScsiLogicalUnit | undefined {
    return this.units.get(key(target, lun));
  }

  /** Every address with a logical unit, ordered by target then LUN. */
  addresses(): LunAddress[] {
    return [...this.units.keys()].sort((a, b) => a - b).map((k) => ({ target: k >> 16, lun: k & 0xffff }));
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(encodeScsiConfig(this.config()).subarray(offset, offset + data.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.metrics.configWrites++;
    // §5.6.4: only sense_size and cdb_size are driver-writable; values beyond the device's bound are ignored.
    if (data.length === 4 && (offset === SCSI_CONFIG.senseSize || offset === SCSI_CONFIG.cdbSize)) {
      const value = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
      if (offset === SCSI_CONFIG.senseSize && value <= VIRTIO_SCSI_MAX_SENSE_SIZE) {
        this.senseSize = value;
        return;
      }
      if (offset === SCSI_CONFIG.cdbSize && value >= 1 && value <= VIRTIO_SCSI_MAX_CDB_SIZE) {
        this.cdbSize = value;
        return;
      }
    }
    this.metrics.ignoredConfigWrites++;
  }

  activate(context: ActivationContext): void {
    this.context = context;
    const events = {
      ringError: () => this.metrics.ringErrors++,
      needsReset: () => this.metrics.needsReset++,
      interrupt: () => this.metrics.interrupts++,
    };
    this.runners = context.queues.map((queue: DeviceQueue | null, index) =>
      queue === null ? undefined : new QueueRunner(index, queue, context, events, () => this.queueNotify(index)),
    );
  }

  queueNotify(index: number): void {
    const runner = this.runners[index];
    if (runner === undefined) return;
    this.metrics.notifications++;
    if (index === SCSI_EVENT_QUEUE) {
      // A buffer arrived: report the events dropped meanwhile (§5.6.6.3).
      if (this.eventsMissed) this.postEvent(VIRTIO_SCSI_T_NO_EVENT, { target: 0, lun: 0 }, 0);
      return;
    }
    runner.drain((chain) => (index === SCSI_CONTROL_QUEUE ? this.control(runner, chain) : this.command(runner, chain)));
  }

  reset(): void {
    this.generationCounter++;
    for (const r of this.runners) r?.detach();
    this.runners = [];
    this.context = undefined;
    this.senseSize = VIRTIO_SCSI_SENSE_SIZE;
    this.cdbSize = VIRTIO_SCSI_CDB_SIZE;
    this.eventsMissed = false;
    for (const t of this.tasks) t.aborted = true;
    for (const u of this.units.values()) u.reset(SENSE.POWER_ON_RESET);
  }

  /** Resolves when every command and control request in flight has completed. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /**
   * Hotplug: adds a logical unit. The target's other units get REPORTED LUNS DATA HAS CHANGED;
   * with VIRTIO_SCSI_F_HOTPLUG the driver gets TRANSPORT_RESET / RESCAN (§5.6.6.3.1).
   */
  addLun(target: number, lun: number, unit: ScsiLogicalUnit | ScsiLogicalUnitOptions): ScsiLogicalUnit {
    const added = this.insert(target, lun, unit);
    this.lunsChanged(target, lun);
    if (this.negotiated(VIRTIO_SCSI_F_HOTPLUG)) this.postEvent(VIRTIO_SCSI_T_TRANSPORT_RESET, { target, lun }, VIRTIO_SCSI_EVT_RESET_RESCAN);
    return added;
  }

  /** Hot-unplug: removes a logical unit (commands in flight still complete) and sends REMOVED. */
  removeLun(target: number, lun: number): ScsiLogicalUnit {
    const unit = this.units.get(key(target, lun));
    if (unit === undefined) throw new BackendError('INVALID_OPTION', `scsi: no logical unit at target ${target} lun ${lun}`, { device: 'scsi', field: 'lun' });
    this.units.delete(key(target, lun));
    this.lunsChanged(target, lun);
    if (this.negotiated(VIRTIO_SCSI_F_HOTPLUG)) this.postEvent(VIRTIO_SCSI_T_TRANSPORT_RESET, { target, lun }, VIRTIO_SCSI_EVT_RESET_REMOVED);
    return unit;
  }

  /**
   * The host resized a LUN's BlockDriver: sets CAPACITY DATA HAS CHANGED and, with
   * VIRTIO_SCSI_F_CHANGE, sends PARAM_CHANGE with ASC 0x2A ASCQ 0x09 (§5.6.6.3.3).
   */
  refreshCapacity(): void {
    for (const [k, unit] of this.units) {
      if (unit.refreshCapacity() && this.negotiated(VIRTIO_SCSI_F_CHANGE)) {
        this.postEvent(VIRTIO_SCSI_T_PARAM_CHANGE, { target: k >> 16, lun: k & 0xffff }, 0x2a | (0x09 << 8));
      }
    }
  }

  /** Device state for a snapshot (with the transport's queue states); save after `drain()`. */
  saveState(): ScsiDeviceState {
    return {
      version: 1,
      senseSize: this.senseSize,
      cdbSize: this.cdbSize,
      eventsMissed: this.eventsMissed,
      units: this.addresses().map(({ target, lun }) => {
        const u = this.units.get(key(target, lun))!;
        return { target, lun, writeCache: u.writeCache, stopped: u.isStopped, blocks: u.blocks };
      }),
      metrics: this.metrics.toJSON(),
    };
  }

  /** Restores {@link saveState} output; the LUN set and media sizes must match. Throws BackendError INVALID_STATE. */
  restoreState(state: unknown): void {
    const s = restoreScsiState(
      state,
      this.addresses().map(({ target, lun }) => ({ target, lun, blocks: this.units.get(key(target, lun))!.blocks })),
    );
    this.senseSize = s.senseSize;
    this.cdbSize = s.cdbSize;
    this.eventsMissed = s.eventsMissed;
    for (const u of s.units) this.units.get(key(u.target, u.lun))!.restoreState(u);
  }

  private negotiated(bit: number): boolean {
    return this.context !== undefined && hasFeature(this.context.features, bit);
  }

  private insert(target: number, lun: number, unit: ScsiLogicalUnit | ScsiLogicalUnitOptions): ScsiLogicalUnit {
    check(Number.isInteger(target) && target >= 0 && target <= this.settings.maxTarget, 'target', `must be 0..${this.settings.maxTarget}`);
    check(Number.isInteger(lun) && lun >= 0 && lun <= this.settings.maxLun, 'lun', `must be 0..${this.settings.maxLun}`);
    check(!this.units.has(key(target, lun)), 'lun', `target ${target} lun ${lun} already exists`);
    const u =
      unit instanceof ScsiLogicalUnit ? unit : new ScsiLogicalUnit({ maxTransferBytes: Math.min(this.settings.maxSectors * 512, 1 << 30), ...unit });
    this.units.set(key(target, lun), u);
    return u;
  }

  private lunsChanged(target: number, lun: number): void {
    for (const [k, u] of this.units) if (k >> 16 === target && (k & 0xffff) !== lun) u.addUnitAttention(SENSE.REPORTED_LUNS_DATA_HAS_CHANGED);
  }

  private targetView(target: number): ScsiTargetView {
    return {
      luns: () => [...this.units.keys()].filter((k) => k >> 16 === target).map((k) => k & 0xffff).sort((a, b) => a - b),
    };
  }

  private hasTarget(target: number): boolean {
    for (const k of this.units.keys()) if (k >> 16 === target) return true;
    return false;
  }

  /** Writes a 16-byte event into the next event queue buffer, or records that one was dropped. */
  private postEvent(event: number, address: LunAddress, reason: number): void {
    const runner = this.runners[SCSI_EVENT_QUEUE];
    const context = this.context;
    if (runner === undefined || context === undefined) return;
    for (;;) {
      const chain = runner.pop();
      if (chain === undefined) return; // broken
      if (chain === null) {
        // §5.6.6.3: no buffer: the event is lost and the next one carries EVENTS_MISSED.
        this.eventsMissed = true;
        this.metrics.eventsMissed++;
        return;
      }
      if (chain.writableLength < VIRTIO_SCSI_EVENT_SIZE) {
        this.metrics.faults.EVENT_BUFFER_TOO_SHORT++;
        runner.complete(chain.head, 0);
        continue;
      }
      const bytes = new Uint8Array(VIRTIO_SCSI_EVENT_SIZE);
      const v = new DataView(bytes.buffer);
      v.setUint32(0, (event | (this.eventsMissed ? VIRTIO_SCSI_T_EVENTS_MISSED : 0)) >>> 0, true);
      bytes.set(encodeLunAddress(address), 4);
      v.setUint32(12, reason, true);
      try {
        scatter(context.memory, chain.writable, bytes);
      } catch (error) {
        runner.fail(`scsi: writing event ${chain.head}: ${message(error)}`);
        return;
      }
      this.eventsMissed = false;
      this.metrics.eventsDelivered++;
      runner.complete(chain.head, VIRTIO_SCSI_EVENT_SIZE);
      return;
    }
  }

  private fault(fault: ScsiFault): void {
    this.metrics.faults[fault]++;
  }

  private track(work: Promise<void>): void {
    const done = work.finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** §5.6.6.1: one request queue buffer. */
  private command(runner: QueueRunner, chain: DescriptorChain): void {
    const context = this.context!;
    const headerLength = SCSI_CMD_HEADER_SIZE + this.cdbSize;
    const responseLength = SCSI_RESP_HEADER_SIZE + this.senseSize;
    if (chain.writableLength < responseLength) {
      this.fault('RESPONSE_TOO_SHORT');
      runner.complete(chain.head, 0);
      return;
    }
    const respond = (response: number, result?: ScsiCommandResult, residual = 0) => this.respond(runner, chain, responseLength, response, result, residual);
    if (chain.readableLength < headerLength) {
      this.fault('HEADER_TOO_SHORT');
      respond(VIRTIO_SCSI_S_FAILURE);
      return;
    }
    const header = new Uint8Array(headerLength);
    let dataIn: Uint8Array[];
    let dataOut: Uint8Array[];
    const dataOutSegments = sliceSegments(chain.readable, headerLength, chain.readableLength - headerLength);
    const dataInSegments = sliceSegments(chain.writable, responseLength, chain.writableLength - responseLength);
    try {
      gather(context.memory, chain.readable, header);
      dataIn = segmentViews(context.memory, dataInSegments);
      dataOut = segmentViews(context.memory, dataOutSegments);
    } catch (error) {
      runner.fail(`scsi: reading request ${chain.head}: ${message(error)}`);
      return;
    }
    const dataTotal = totalLength(dataInSegments) + totalLength(dataOutSegments);
    if (dataIn.length > 0 && dataOut.length > 0 && !hasFeature(context.features, VIRTIO_SCSI_F_INOUT)) {
      this.fault('BIDIRECTIONAL');
      respond(VIRTIO_SCSI_S_FAILURE, undefined, dataTotal);
      return;
    }
    const address = decodeLunAddress(header.subarray(0, 8));
    if (address === undefined || !this.hasTarget(address.target)) {
      this.fault('BAD_TARGET');
      respond(VIRTIO_SCSI_S_BAD_TARGET, undefined, dataTotal);
      return;
    }
    const tag = new DataView(header.buffer).getBigUint64(8, true);
    const cdb = header.subarray(SCSI_CMD_HEADER_SIZE);
    const unit = this.units.get(key(address.target, address.lun));
    const io = { dataIn, dataOut };
    if (unit === undefined) {
      const identity = this.units.values().next().value!.identity;
      const result = executeWithoutUnit(cdb, io, this.targetView(address.target), identity);
      this.count(result);
      respond(VIRTIO_SCSI_S_OK, result, residualOf(result, dataTotal));
      return;
    }
    const generation = this.generationCounter;
    const task: Task = { target: address.target, lun: address.lun, tag, aborted: false, done: Promise.resolve() };
    this.tasks.add(task);
    this.metrics.inFlight++;
    this.metrics.maxInFlight = Math.max(this.metrics.maxInFlight, this.metrics.inFlight);
    task.done = unit.execute(cdb, io, this.targetView(address.target)).then((result) => {
      this.tasks.delete(task);
      this.metrics.inFlight--;
      if (generation !== this.generationCounter) {
        this.metrics.droppedAfterReset++;
        return;
      }
      this.count(result);
      if (task.aborted) {
        respond(VIRTIO_SCSI_S_ABORTED, undefined, dataTotal);
        return;
      }
      if (result.overrun === true) {
        respond(VIRTIO_SCSI_S_OVERRUN, undefined, dataTotal);
        return;
      }
      if (result.sense !== undefined && (result.sense[2]! & 0x0f) === 0x3) this.fault('BACKEND_ERROR');
      respond(VIRTIO_SCSI_S_OK, result, residualOf(result, dataTotal));
    });
    this.track(task.done);
  }

  private count(result: ScsiCommandResult): void {
    const m = this.metrics;
    m.commands++;
    if (result.status === SAM_STAT_GOOD) m.status.good++;
    else if (result.status === SAM_STAT_CHECK_CONDITION) m.status.checkCondition++;
    if (result.status === SAM_STAT_GOOD && result.cdb?.op === 'read') m.readBytes += result.dataInLength;
    if (result.status === SAM_STAT_GOOD && result.cdb?.op === 'write') m.writeBytes += result.dataOutLength;
  }

  /** Writes `struct virtio_scsi_resp_cmd` (sense area zero-filled) and returns the chain. */
  private respond(runner: QueueRunner, chain: DescriptorChain, responseLength: number, response: number, result: ScsiCommandResult | undefined, residual: number): void {
    const m = this.metrics.responses;
    if (response === VIRTIO_SCSI_S_OK) m.ok++;
    else if (response === VIRTIO_SCSI_S_OVERRUN) m.overrun++;
    else if (response === VIRTIO_SCSI_S_ABORTED) m.aborted++;
    else if (response === VIRTIO_SCSI_S_BAD_TARGET) m.badTarget++;
    else m.failure++;
    const bytes = new Uint8Array(responseLength);
    const v = new DataView(bytes.buffer);
    const sense = result?.sense?.subarray(0, this.senseSize) ?? new Uint8Array(0);
    v.setUint32(0, sense.length, true);
    v.setUint32(4, Math.min(residual, 0xffff_ffff), true);
    bytes[10] = result?.status ?? 0;
    bytes[11] = response;
    bytes.set(sense, SCSI_RESP_HEADER_SIZE);
    try {
      scatter(this.context!.memory, chain.writable, bytes);
    } catch (error) {
      runner.fail(`scsi: writing response of ${chain.head}: ${message(error)}`);
      return;
    }
    runner.complete(chain.head, responseLength + (response === VIRTIO_SCSI_S_OK ? (result?.dataInLength ?? 0) : 0));
  }

  /** §5.6.6.2: one control queue buffer. */
  private control(runner: QueueRunner, chain: DescriptorChain): void {
    const context = this.context!;
    const bad = () => {
      this.fault('BAD_CONTROL_REQUEST');
      runner.complete(chain.head, 0);
    };
    if (chain.readableLength < 4) return bad();
    const head = new Uint8Array(Math.min(chain.readableLength, 24));
    try {
      gather(context.memory, chain.readable, head);
    } catch (error) {
      runner.fail(`scsi: reading control request ${chain.head}: ${message(error)}`);
      return;
    }
    const v = new DataView(head.buffer);
    const type = v.getUint32(0, true);
    const reply = (bytes: Uint8Array) => {
      try {
        scatter(context.memory, chain.writable, bytes);
      } catch (error) {
        runner.fail(`scsi: writing control response ${chain.head}: ${message(error)}`);
        return;
      }
      runner.complete(chain.head, bytes.length);
    };
    if (type === VIRTIO_SCSI_T_AN_QUERY || type === VIRTIO_SCSI_T_AN_SUBSCRIBE) {
      if (chain.readableLength < 16 || chain.writableLength < 5) return bad();
      this.metrics.an++;
      const address = decodeLunAddress(head.subarray(4, 12));
      const out = new Uint8Array(5);
      // No asynchronous event class is supported: event_actual is 0 (§5.6.6.2.2).
      out[4] = address !== undefined && this.hasTarget(address.target) ? VIRTIO_SCSI_S_OK : VIRTIO_SCSI_S_BAD_TARGET;
      return reply(out);
    }
    if (type !== VIRTIO_SCSI_T_TMF || chain.readableLength < 24 || chain.writableLength < 1) return bad();
    this.metrics.tmf++;
    const subtype = v.getUint32(4, true);
    const address = decodeLunAddress(head.subarray(8, 16));
    const tag = v.getBigUint64(16, true);
    if (address === undefined || !this.hasTarget(address.target)) return reply(Uint8Array.of(VIRTIO_SCSI_S_BAD_TARGET));
    const unit = this.units.get(key(address.target, address.lun));
    const onLun = (t: Task) => t.target === address.target && t.lun === address.lun;
    let selected: Task[];
    let after: () => void = () => undefined;
    switch (subtype) {
      case VIRTIO_SCSI_T_TMF_ABORT_TASK:
        selected = [...this.tasks].filter((t) => onLun(t) && t.tag === tag);
        break;
      case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
      case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
        selected = [...this.tasks].filter(onLun);
        break;
      case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
        selected = [...this.tasks].filter(onLun);
        after = () => unit?.reset(SENSE.POWER_ON_RESET);
        break;
      case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET:
        selected = [...this.tasks].filter((t) => t.target === address.target);
        after = () => {
          for (const [k, u] of this.units) if (k >> 16 === address.target) u.reset(SENSE.I_T_NEXUS_LOSS);
        };
        break;
      case VIRTIO_SCSI_T_TMF_QUERY_TASK:
        return reply(Uint8Array.of([...this.tasks].some((t) => onLun(t) && t.tag === tag) ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED : VIRTIO_SCSI_S_FUNCTION_COMPLETE));
      case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
        return reply(Uint8Array.of([...this.tasks].some(onLun) ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED : VIRTIO_SCSI_S_FUNCTION_COMPLETE));
      default:
        // CLEAR ACA (no ACA support) and unknown functions.
        return reply(Uint8Array.of(VIRTIO_SCSI_S_FUNCTION_REJECTED));
    }
    if (unit === undefined && subtype !== VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) return reply(Uint8Array.of(VIRTIO_SCSI_S_INCORRECT_LUN));
    // Aborted commands complete with VIRTIO_SCSI_S_ABORTED once their BlockDriver calls have
    // settled (guest memory is never written after the buffer was returned); the TMF completes after them.
    for (const t of selected) t.aborted = true;
    const generation = this.generationCounter;
    this.track(
      Promise.all(selected.map((t) => t.done)).then(() => {
        if (generation !== this.generationCounter) {
          this.metrics.droppedAfterReset++;
          return;
        }
        after();
        reply(Uint8Array.of(VIRTIO_SCSI_S_FUNCTION_COMPLETE));
      }),
    );
  }
}

function key(target: number, lun: number): number {
  return target * 0x1_0000 + lun;
}

function residualOf(result: ScsiCommandResult, dataTotal: number): number {
  // §5.6.6.1: residual = data length - bytes transferred.
  return Math.max(0, dataTotal - result.dataInLength - result.dataOutLength);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function check(condition: boolean, field: string, text: string): asserts condition {
  if (!condition) throw new BackendError('INVALID_OPTION', `scsi option ${field} ${text}`, { device: 'scsi', field });
}
