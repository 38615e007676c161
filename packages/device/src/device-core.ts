import type { GuestMemory } from '@virtio-ts/memory';
import { MAX_QUEUE_SIZE } from '@virtio-ts/ring';
import type { DeviceQueue, QueueState } from '@virtio-ts/ring';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1 } from './constants.js';
import { DeviceError } from './errors.js';
import { featureBit, featureWord, hasFeature, queueFeaturesOf, queueLayoutOf, withFeatureWord, type Features } from './features.js';
import { queueAreaProblem, queueSizeProblem } from './queue-area.js';
import { defaultQueueFactory, type QueueFactory, type QueueRing } from './queue-factory.js';
import { DeviceStatusMachine } from './status-machine.js';
import type { ActivationContext, Interrupt, Notifier, VirtioDevice } from './virtio-device.js';

/**
 * Queues a device may declare. The transports' 16-bit queue index fields allow 65535; no real
 * device needs more than a few hundred, and the bound keeps per-queue arrays small.
 */
export const MAX_QUEUES = 1024;

/** The driver-programmed state of one virtqueue (common_cfg queue_* fields / MMIO Queue* registers). */
export interface QueueConfig {
  readonly index: number;
  readonly maxSize: number;
  /** queue_size / QueueSize: the driver's choice, initially `maxSize`. */
  size: number;
  /** queue_enable / QueueReady. */
  enabled: boolean;
  /** The three area addresses as 32-bit halves, exactly as written (read back unchanged). */
  descLo: number;
  descHi: number;
  driverLo: number;
  driverHi: number;
  deviceLo: number;
  deviceHi: number;
  /** The device side of the queue while enabled. */
  queue: DeviceQueue | null;
}

/** One queue in a {@link DeviceCoreState}. */
export interface QueueConfigState {
  readonly size: number;
  readonly enabled: boolean;
  readonly descLo: number;
  readonly descHi: number;
  readonly driverLo: number;
  readonly driverHi: number;
  readonly deviceLo: number;
  readonly deviceHi: number;
  /** The ring's own state while enabled (`DeviceQueue.saveState()`), else null. */
  readonly ring: QueueState | null;
}

/**
 * A plain, JSON-serialisable snapshot of a {@link DeviceCore} (features as hex strings). Versioned
 * so that old snapshots still load; restored as untrusted input (H16).
 */
export interface DeviceCoreState {
  readonly version: 1;
  readonly status: number;
  /** The driver's feature set, hex. */
  readonly driverFeatures: string;
  readonly configGeneration: number;
  /** Whether the device had been activated (DRIVER_OK reached it). */
  readonly activated: boolean;
  readonly queues: readonly QueueConfigState[];
  /** `device.saveState()` when the device has that capability. */
  readonly device?: unknown;
}

/** Options of {@link DeviceCore}. */
export interface DeviceCoreOptions {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  /** The transport's notification delivery (MSI-X / ISR / InterruptStatus). */
  readonly interrupt: Interrupt;
  readonly queueFactory?: QueueFactory;
  /**
   * Where validated queue notifications go. Default: straight to `device.queueNotify`. A VMM
   * injects a doorbell here and later calls {@link DeviceCore.deliverNotify} on the device thread.
   */
  readonly notifier?: Notifier;
  /** Called for every guest error the core records (never throws back into the transport). */
  readonly onError?: (error: DeviceError) => void;
}

function address(lo: number, hi: number): number {
  // Above 2^53 this is not a safe integer, which every range check rejects.
  return hi * 0x1_0000_0000 + lo;
}

/**
 * The transport-independent device side of VIRTIO 1.3 §2–§3: status and feature negotiation
 * ({@link DeviceStatusMachine}), per-queue configuration and validation, activation with queues
 * built from the negotiated ring features, notifications, config space with its generation,
 * DEVICE_NEEDS_RESET and reset. virtio-pci and virtio-mmio are register maps over this class.
 *
 * Nothing the guest does makes a method throw: faults are recorded (`lastError`, `errorCount`,
 * `onError`) and answered as the spec says (a bit does not stick, or DEVICE_NEEDS_RESET).
 */
export class DeviceCore {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  readonly numQueues: number;
  /** Features offered to the driver: the device's, minus what this core cannot honour. */
  readonly offeredFeatures: Features;
  readonly queues: readonly QueueConfig[];
  /** Guest errors recorded since construction. */
  errorCount = 0;
  lastError: DeviceError | undefined;

  private readonly statusMachine: DeviceStatusMachine;
  private readonly transportInterrupt: Interrupt;
  private readonly queueFactory: QueueFactory;
  private readonly notifier: Notifier | undefined;
  private readonly onError: ((error: DeviceError) => void) | undefined;
  private activated = false;
  /** Incremented at every reset so that a device's stale Interrupt calls are dropped. */
  private epoch = 0;
  private generation = 0;
  private seenDeviceGeneration: number;

  constructor(options: DeviceCoreOptions) {
    const { device } = options;
    if (!hasFeature(device.deviceFeatures, VIRTIO_F_VERSION_1)) {
      throw new DeviceError('INVALID_ARGUMENT', 'a device must offer VIRTIO_F_VERSION_1 (modern only)', { deviceType: device.deviceType });
    }
    const sizes = device.queueMaxSizes;
    if (sizes.length > MAX_QUEUES) throw new DeviceError('INVALID_ARGUMENT', `a device may declare at most ${MAX_QUEUES} queues`);
    for (const [index, size] of sizes.entries()) {
      if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE) {
        throw new DeviceError('INVALID_ARGUMENT', `queue max size must be 1..${MAX_QUEUE_SIZE}`, { queue: index, size });
      }
    }
    if (!Number.isInteger(device.configSize) || device.configSize < 0 || device.configSize > 0x1000) {
      throw new DeviceError('INVALID_ARGUMENT', 'configSize must be 0..4096', { size: device.configSize });
    }
    this.device = device;
    this.memory = options.memory;
    this.numQueues = sizes.length;
    this.transportInterrupt = options.interrupt;
    this.queueFactory = options.queueFactory ?? defaultQueueFactory;
    this.notifier = options.notifier;
    this.onError = options.onError;
    let offered = BigInt.asUintN(64, device.deviceFeatures);
    // §2.6.1: a queue reset needs the device's cooperation.
    if (device.queueReset === undefined || device.queueEnable === undefined) offered &= ~featureBit(VIRTIO_F_RING_RESET);
    this.offeredFeatures = offered;
    this.statusMachine = new DeviceStatusMachine({
      offered,
      required: device.requiredFeatures ?? 0n,
      validate: device.validateFeatures === undefined ? undefined : (f) => device.validateFeatures!(f),
    });
    this.queues = sizes.map((maxSize, index) => ({
      index,
      maxSize,
      size: maxSize,
      enabled: false,
      descLo: 0,
      descHi: 0,
      driverLo: 0,
      driverHi: 0,
      deviceLo: 0,
      deviceHi: 0,
      queue: null,
    }));
    this.seenDeviceGeneration = device.configGeneration;
  }

  // --- status and features -----------------------------------------------------------------

  /** device_status as the driver reads it. */
  get status(): number {
    return this.statusMachine.status;
  }

  /** The negotiated features (0n before FEATURES_OK). */
  get negotiatedFeatures(): Features {
    return this.statusMachine.negotiatedFeatures;
  }

  /** The driver's feature set as written. */
  get driverFeatures(): Features {
    return this.statusMachine.driverFeatures;
  }

  /** True while the device is activated and healthy (DRIVER_OK, no NEEDS_RESET, no FAILED). */
  get live(): boolean {
    return this.activated && this.statusMachine.live;
  }

  /** 32-bit word `select` of the offered features (0 for select >= 2). */
  deviceFeatureWord(select: number): number {
    return featureWord(this.offeredFeatures, select);
  }

  /** 32-bit word `select` of the driver's features as written. */
  driverFeatureWord(select: number): number {
    return featureWord(this.statusMachine.driverFeatures, select);
  }

  /** A driver_feature write of word `select` (ignored, with an error, outside DRIVER..FEATURES_OK). */
  writeDriverFeatureWord(select: number, value: number): void {
    if (select > 1) return; // §4.1.4.3: no feature is defined past bit 63; nothing to store.
    this.report(this.statusMachine.writeDriverFeatures(withFeatureWord(this.statusMachine.driverFeatures, select, value)));
  }

  /** A device_status write. */
  writeStatus(value: number): void {
    const result = this.statusMachine.writeStatus(value);
    if (result.reset) {
      this.reset();
      return;
    }
    this.report(result.error);
    if (result.activate) this.activate();
  }

  /**
   * The device (or the transport on its behalf) sets DEVICE_NEEDS_RESET; after DRIVER_OK this
   * sends a configuration change notification (§2.1.2). Queues stop receiving notifications.
   */
  markNeedsReset(reason?: string): void {
    if (!this.statusMachine.markNeedsReset()) return;
    if (reason !== undefined) this.report(new DeviceError('DEVICE_FAILURE', reason, { deviceType: this.device.deviceType }));
    if ((this.statusMachine.status & VIRTIO_CONFIG_S_DRIVER_OK) !== 0) this.transportInterrupt.signalConfig();
  }

  /** Device reset (§2.4): the device, every queue and the status return to their initial state. */
  reset(): void {
    this.epoch++;
    this.activated = false;
    this.guard(() => this.device.reset());
    for (const q of this.queues as QueueConfig[]) this.resetQueueConfig(q);
    this.statusMachine.reset();
  }

  // --- queues ------------------------------------------------------------------------------

  /** The configuration of queue `index`, or undefined when it does not exist. */
  queue(index: number): QueueConfig | undefined {
    return Number.isInteger(index) && index >= 0 ? this.queues[index] : undefined;
  }

  /**
   * queue_size write. Refused while the queue is enabled (§4.1.4.3.2: configure, then enable). A
   * size the driver MUST NOT write (0, above the maximum, or not a power of two for a split ring)
   * is not taken — §4.1.4.3.1: the device presents "either a value of 0 or a power of 2" — and
   * sets DEVICE_NEEDS_RESET: the driver's ring is laid out for a size the device will not use.
   */
  setQueueSize(index: number, size: number): void {
    const q = this.writableQueue(index);
    if (q === undefined) return;
    const value = size & 0xffff;
    // Before FEATURES_OK the layout is not known yet: only the bounds are checked.
    const layout = this.statusMachine.featuresOk ? queueLayoutOf(this.statusMachine.negotiatedFeatures) : 'packed';
    const problem = queueSizeProblem(layout, value, q.maxSize);
    if (problem !== undefined) {
      this.report(new DeviceError('INVALID_QUEUE_SIZE', problem, { queue: index, size: value }));
      this.markNeedsReset();
      return;
    }
    q.size = value;
  }

  /** A 32-bit half of queue_desc / queue_driver / queue_device. */
  setQueueAddressHalf(index: number, area: 'desc' | 'driver' | 'device', high: boolean, value: number): void {
    const q = this.writableQueue(index);
    if (q === undefined) return;
    const v = value >>> 0;
    if (area === 'desc') {
      if (high) q.descHi = v;
      else q.descLo = v;
    } else if (area === 'driver') {
      if (high) q.driverHi = v;
      else q.driverLo = v;
    } else if (high) q.deviceHi = v;
    else q.deviceLo = v;
  }

  /**
   * queue_enable = 1 / QueueReady = 1: validates the size and the three areas against guest memory
   * and builds the device side of the queue with the negotiated ring features. An invalid queue
   * sets DEVICE_NEEDS_RESET (the guest cannot be told otherwise); nothing throws.
   */
  enableQueue(index: number): void {
    const q = this.queue(index);
    if (q === undefined) return this.report(new DeviceError('INVALID_QUEUE', 'queue_enable of a queue that does not exist', { queue: index }));
    if (q.enabled) return;
    if (!this.statusMachine.featuresOk) {
      this.report(new DeviceError('QUEUE_NOT_READY', 'queue enabled before FEATURES_OK (§3.1.1 step 7)', { queue: index }));
      return this.markNeedsReset();
    }
    if ((this.statusMachine.status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) {
      return this.report(new DeviceError('QUEUE_NOT_READY', 'queue enabled on a device that needs a reset', { queue: index }));
    }
    const features = this.statusMachine.negotiatedFeatures;
    const layout = queueLayoutOf(features);
    const sizeProblem = queueSizeProblem(layout, q.size, q.maxSize);
    if (sizeProblem !== undefined) {
      this.report(new DeviceError('INVALID_QUEUE_SIZE', sizeProblem, { queue: index, size: q.size }));
      return this.markNeedsReset();
    }
    const desc = address(q.descLo, q.descHi);
    const driver = address(q.driverLo, q.driverHi);
    const deviceArea = address(q.deviceLo, q.deviceHi);
    const queueRing: QueueRing =
      layout === 'split'
        ? { layout, ring: { size: q.size, descTable: desc, availRing: driver, usedRing: deviceArea } }
        : { layout, ring: { size: q.size, descRing: desc, driverEvent: driver, deviceEvent: deviceArea } };
    const areaProblem = queueAreaProblem(this.memory, queueRing);
    if (areaProblem !== undefined) {
      this.report(new DeviceError('QUEUE_ADDRESS_INVALID', areaProblem, { queue: index }));
      return this.markNeedsReset();
    }
    let queue: DeviceQueue;
    try {
      queue = this.queueFactory.createDeviceQueue(queueRing, { memory: this.memory, features: queueFeaturesOf(features), index });
    } catch (cause) {
      this.report(new DeviceError('QUEUE_ADDRESS_INVALID', 'the ring layer refused the queue layout', { queue: index }, { cause }));
      return this.markNeedsReset();
    }
    q.queue = queue;
    q.enabled = true;
    if (this.activated) {
      // Re-enable after a queue reset (§2.6.1) while the device runs.
      const enable = this.device.queueEnable;
      if (enable === undefined) {
        this.report(new DeviceError('QUEUE_NOT_READY', 'queue enabled after DRIVER_OK on a device without queue reset', { queue: index }));
        return;
      }
      this.guard(() => enable.call(this.device, index, queue));
    }
  }

  /**
   * Queue reset (§2.6.1, VIRTIO_F_RING_RESET): the device stops using the queue, and the queue's
   * fields return to their defaults. Ignored (with an error) when the feature was not negotiated.
   */
  resetQueue(index: number): void {
    const q = this.queue(index);
    if (q === undefined) return this.report(new DeviceError('INVALID_QUEUE', 'queue_reset of a queue that does not exist', { queue: index }));
    if (!hasFeature(this.statusMachine.negotiatedFeatures, VIRTIO_F_RING_RESET)) {
      return this.report(new DeviceError('UNSUPPORTED', 'queue_reset without VIRTIO_F_RING_RESET', { queue: index }));
    }
    if (this.activated && q.enabled) {
      const queueReset = this.device.queueReset;
      if (queueReset !== undefined) this.guard(() => queueReset.call(this.device, index));
    }
    this.resetQueueConfig(q);
  }

  /**
   * An available buffer notification from the transport (§2.3.3). Notifications of a queue that
   * does not exist (0xFFFF), is not enabled, or arrive before DRIVER_OK or after NEEDS_RESET are
   * dropped and recorded (HOSTILE-INPUTS H1).
   */
  queueNotify(index: number, data?: number): void {
    if (!this.checkNotify(index)) return;
    if (this.notifier !== undefined) this.notifier.notify(index, data);
    else this.guard(() => this.device.queueNotify(index, data));
  }

  /** Delivers a notification taken from an injected {@link Notifier} (re-checked: the device may have been reset since). */
  deliverNotify(index: number, data?: number): void {
    if (!this.checkNotify(index)) return;
    this.guard(() => this.device.queueNotify(index, data));
  }

  // --- configuration space -------------------------------------------------------------------

  /** config_generation / ConfigGeneration (§2.5.1). */
  get configGeneration(): number {
    this.observeGeneration();
    return this.generation;
  }

  /** Reads device-specific configuration; bytes past `configSize` read as 0 and are recorded. */
  readConfig(offset: number, data: Uint8Array): void {
    this.observeGeneration();
    data.fill(0);
    if (!this.configRangeOk(offset, data.length, 'read')) return;
    this.guard(() => this.device.readConfig(offset, data));
    // A read can be what reveals a change (the spec's note in §4.1.4.3.1).
    this.observeGeneration();
  }

  /** Writes device-specific configuration; writes past `configSize` are dropped and recorded. */
  writeConfig(offset: number, data: Uint8Array): void {
    if (!this.configRangeOk(offset, data.length, 'write')) return;
    this.guard(() => this.device.writeConfig(offset, data));
  }

  /** Records a guest error (the transports call this for their own register faults). */
  report(error: DeviceError | undefined): void {
    if (error === undefined) return;
    this.errorCount++;
    this.lastError = error;
    try {
      this.onError?.(error);
    } catch {
      // An error hook must not turn a guest fault into a host exception.
    }
  }

  // --- snapshot --------------------------------------------------------------------------------

  /** A snapshot of status, features, queues (with their ring state) and the device's own state. */
  saveState(): DeviceCoreState {
    return {
      version: 1,
      status: this.statusMachine.status,
      driverFeatures: this.statusMachine.driverFeatures.toString(16),
      configGeneration: this.generation,
      activated: this.activated,
      queues: this.queues.map((q) => ({
        size: q.size,
        enabled: q.enabled,
        descLo: q.descLo,
        descHi: q.descHi,
        driverLo: q.driverLo,
        driverHi: q.driverHi,
        deviceLo: q.deviceLo,
        deviceHi: q.deviceHi,
        ring: q.enabled && q.queue !== null ? q.queue.saveState() : null,
      })),
      device: this.device.saveState?.(),
    };
  }

  /**
   * Restores a {@link saveState} snapshot, all or nothing: everything is validated (status
   * reachable, features acceptable, queue sizes and areas valid in this guest memory, ring state
   * consistent with the queue registers and the negotiated features), the device restores its own
   * state, and an activated device is activated again with the restored queues. Throws
   * INVALID_STATE (the core is then reset) — a VMM error, not a guest one.
   */
  restoreState(state: unknown): void {
    this.reset();
    try {
      this.restoreUnchecked(state);
    } catch (error) {
      this.reset();
      if (DeviceError.isInstance(error) && error.code === 'INVALID_STATE') throw error;
      throw new DeviceError('INVALID_STATE', 'the saved state cannot be restored', { deviceType: this.device.deviceType }, { cause: error });
    }
  }

  private restoreUnchecked(state: unknown): void {
    const invalid = (message: string, queue?: number): never => {
      throw new DeviceError('INVALID_STATE', message, { deviceType: this.device.deviceType, queue });
    };
    if (typeof state !== 'object' || state === null) return invalid('state must be an object');
    const s = state as Record<string, unknown>;
    if (s.version !== 1) invalid(`unsupported state version ${String(s.version)}`);
    if (typeof s.status !== 'number') invalid('status must be a number');
    if (typeof s.driverFeatures !== 'string' || !/^[0-9a-f]{1,16}$/.test(s.driverFeatures)) invalid('driverFeatures must be hex of at most 64 bits');
    if (typeof s.configGeneration !== 'number' || !Number.isInteger(s.configGeneration) || s.configGeneration < 0 || s.configGeneration > 0xff) {
      invalid('configGeneration must be a byte');
    }
    if (typeof s.activated !== 'boolean') invalid('activated must be a boolean');
    if (!Array.isArray(s.queues) || s.queues.length !== this.numQueues) invalid(`queues must list all ${this.numQueues} queues`);
    const problem = this.statusMachine.restore(s.status as number, BigInt(`0x${s.driverFeatures as string}`));
    if (problem !== undefined) invalid(problem);
    const activated = s.activated as boolean;
    if (activated && (this.statusMachine.status & VIRTIO_CONFIG_S_DRIVER_OK) === 0) invalid('activated without DRIVER_OK');
    const negotiated = this.statusMachine.negotiatedFeatures;
    const layout = queueLayoutOf(negotiated);
    const features = queueFeaturesOf(negotiated);
    const u32 = (value: unknown, name: string, queue: number): number => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) invalid(`${name} must be a u32`, queue);
      return value as number;
    };
    for (const [index, raw] of (s.queues as unknown[]).entries()) {
      if (typeof raw !== 'object' || raw === null) invalid('queue state must be an object', index);
      const qs = raw as Record<string, unknown>;
      const q = this.queues[index] as QueueConfig;
      const size = u32(qs.size, 'size', index);
      const sizeProblem = queueSizeProblem(this.statusMachine.featuresOk ? layout : 'packed', size, q.maxSize);
      if (sizeProblem !== undefined) invalid(sizeProblem, index);
      q.size = size;
      q.descLo = u32(qs.descLo, 'descLo', index);
      q.descHi = u32(qs.descHi, 'descHi', index);
      q.driverLo = u32(qs.driverLo, 'driverLo', index);
      q.driverHi = u32(qs.driverHi, 'driverHi', index);
      q.deviceLo = u32(qs.deviceLo, 'deviceLo', index);
      q.deviceHi = u32(qs.deviceHi, 'deviceHi', index);
      if (typeof qs.enabled !== 'boolean') invalid('enabled must be a boolean', index);
      if (qs.enabled !== true) continue;
      if (!this.statusMachine.featuresOk) invalid('a queue enabled before FEATURES_OK', index);
      const ring = qs.ring as Record<string, unknown> | null;
      if (typeof ring !== 'object' || ring === null) invalid('an enabled queue needs its ring state', index);
      const restore = this.queueFactory.restoreDeviceQueue;
      if (restore === undefined) invalid('the queue factory cannot restore queues', index);
      const queue = restore!.call(this.queueFactory, ring as unknown as QueueState, { memory: this.memory, features, index });
      // The ring state must describe the very ring the registers point at, with the negotiated features.
      const saved = queue.saveState();
      const expected = [address(q.descLo, q.descHi), address(q.driverLo, q.driverHi), address(q.deviceLo, q.deviceHi)];
      const actual = saved.layout === 'split' ? [saved.ring.descTable, saved.ring.availRing, saved.ring.usedRing] : [saved.ring.descRing, saved.ring.driverEvent, saved.ring.deviceEvent];
      if (saved.layout !== layout || saved.ring.size !== size || actual.some((a, i) => a !== expected[i])) invalid('ring state does not match the queue registers', index);
      if (saved.features.eventIdx !== features.eventIdx || saved.features.indirect !== features.indirect || saved.features.inOrder !== features.inOrder) {
        invalid('ring features do not match the negotiated features', index);
      }
      q.queue = queue;
      q.enabled = true;
    }
    if (s.device !== undefined) {
      if (this.device.restoreState === undefined) invalid('the device cannot restore its state');
      this.device.restoreState!(s.device);
    }
    this.generation = s.configGeneration as number;
    this.seenDeviceGeneration = this.device.configGeneration;
    if (activated && (this.statusMachine.status & VIRTIO_CONFIG_S_NEEDS_RESET) === 0) {
      // Activation of a restored device must not be turned into NEEDS_RESET silently: let it throw.
      this.activated = true;
      this.device.activate(this.activationContext());
    } else if (activated) {
      this.activated = true;
    }
  }

  // --- internals -----------------------------------------------------------------------------

  private activate(): void {
    if ((this.statusMachine.status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) {
      this.report(new DeviceError('DEVICE_FAILURE', 'DRIVER_OK on a device that needs a reset: not activated'));
      return;
    }
    const context = this.activationContext();
    this.activated = true;
    this.guard(() => this.device.activate(context));
  }

  private activationContext(): ActivationContext {
    const epoch = this.epoch;
    const live = (): boolean => epoch === this.epoch && this.activated;
    const transport = this.transportInterrupt;
    const interrupt: Interrupt = {
      signalQueue: (index) => {
        if (live()) transport.signalQueue(index);
      },
      signalConfig: () => {
        if (live()) transport.signalConfig();
      },
    };
    return {
      memory: this.memory,
      features: this.statusMachine.negotiatedFeatures,
      queues: this.queues.map((q) => (q.enabled ? q.queue : null)),
      interrupt,
      markNeedsReset: (reason) => {
        if (epoch === this.epoch) this.markNeedsReset(reason ?? 'the device reported a fatal error');
      },
    };
  }

  private checkNotify(index: number): boolean {
    const q = this.queue(index);
    if (q === undefined) {
      this.report(new DeviceError('INVALID_QUEUE', 'notification of a queue that does not exist', { queue: index }));
      return false;
    }
    if (!q.enabled || !this.live) {
      this.report(new DeviceError('QUEUE_NOT_READY', 'notification of a queue that is not enabled on a live device', { queue: index, status: this.status }));
      return false;
    }
    return true;
  }

  private writableQueue(index: number): QueueConfig | undefined {
    const q = this.queue(index);
    if (q === undefined) {
      this.report(new DeviceError('INVALID_QUEUE', 'queue configuration of a queue that does not exist', { queue: index }));
      return undefined;
    }
    if (q.enabled) {
      this.report(new DeviceError('QUEUE_NOT_READY', 'queue configuration changed while the queue is enabled', { queue: index }));
      return undefined;
    }
    return q;
  }

  private resetQueueConfig(q: QueueConfig): void {
    if (q.queue !== null) {
      try {
        q.queue.reset();
      } catch {
        // The ring's reset only forgets state; a failure leaves nothing to undo.
      }
    }
    q.queue = null;
    q.enabled = false;
    q.size = q.maxSize;
    q.descLo = q.descHi = q.driverLo = q.driverHi = q.deviceLo = q.deviceHi = 0;
  }

  private configRangeOk(offset: number, length: number, op: string): boolean {
    if (Number.isInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.device.configSize) return true;
    this.report(new DeviceError('CONFIG_OUT_OF_RANGE', `config ${op} past the device configuration space`, { offset, size: length }));
    return false;
  }

  private observeGeneration(): void {
    const current = this.device.configGeneration;
    if (current !== this.seenDeviceGeneration) {
      this.seenDeviceGeneration = current;
      this.generation = (this.generation + 1) & 0xff;
    }
  }

  /** Runs device code; a throw is a device failure: NEEDS_RESET, never an exception to the transport. */
  private guard(run: () => void): void {
    try {
      run();
    } catch (cause) {
      this.report(new DeviceError('DEVICE_FAILURE', 'the device implementation threw', { deviceType: this.device.deviceType }, { cause }));
      this.markNeedsReset();
    }
  }
}
