import type { GuestMemory } from '@virtio-ts/memory';
import type { DriverQueue } from '@virtio-ts/ring';
import {
  DeviceError,
  MAX_QUEUES,
  VIRTIO_F_NOTIFICATION_DATA,
  defaultQueueFactory,
  featureWord,
  hasFeature,
  type Features,
  type GuestAllocator,
  type QueueFactory,
  type QueueSetupOptions,
  type VirtioTransport,
} from '@virtio-ts/device';
import {
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VERSION,
  VIRTIO_MMIO_VERSION_2,
} from './constants.js';
import { PciError } from './errors.js';
import { allocateDriverQueue } from './queue-allocation.js';
import type { MmioAccessor } from './platform.js';
import { VIRTIO_MMIO_WINDOW_SIZE } from './virtio-mmio-device.js';

/** Options of {@link VirtioMmioTransport.probe}. */
export interface VirtioMmioTransportOptions {
  readonly mmio: MmioAccessor;
  /** Guest-physical base of the device's register window. */
  readonly base: number;
  /** Size of the window (default 0x200): the configuration space is what follows 0x100. */
  readonly windowSize?: number;
  readonly memory: GuestMemory;
  readonly allocator: GuestAllocator;
  readonly queueFactory?: QueueFactory;
}

interface QueueRecord {
  readonly areas: number[];
  readonly handler: (() => void) | undefined;
}

const RESET_POLLS = 1000;
const CONFIG_RETRIES = 64;

/**
 * The driver side of virtio-mmio version 2 (VIRTIO 1.3 §4.2.3). One interrupt line: call
 * `handleInterrupt()` when it is asserted; it reads InterruptStatus, acknowledges it and runs the
 * handlers.
 */
export class VirtioMmioTransport implements VirtioTransport {
  readonly deviceType: number;
  readonly memory: GuestMemory;
  readonly allocator: GuestAllocator;
  readonly numQueues: number;
  private readonly mmio: MmioAccessor;
  private readonly base: number;
  private readonly configLength: number;
  private readonly queueFactory: QueueFactory;
  private readonly queues = new Map<number, QueueRecord>();
  private driverFeatures: Features = 0n;
  private configHandler: (() => void) | undefined;

  private constructor(options: VirtioMmioTransportOptions, deviceType: number) {
    this.mmio = options.mmio;
    this.base = options.base;
    this.memory = options.memory;
    this.allocator = options.allocator;
    this.queueFactory = options.queueFactory ?? defaultQueueFactory;
    this.deviceType = deviceType;
    this.configLength = (options.windowSize ?? VIRTIO_MMIO_WINDOW_SIZE) - VIRTIO_MMIO_CONFIG;
    // MMIO has no num_queues: the queues are the selectors whose QueueNumMax is non-zero.
    let n = 0;
    while (n < MAX_QUEUES && this.getQueueMaxSize(n) !== 0) n++;
    this.numQueues = n;
  }

  /** Checks magic, version 2 and a non-zero device id (§4.2.3.1.1). Throws PciError NOT_VIRTIO. */
  static probe(options: VirtioMmioTransportOptions): VirtioMmioTransport {
    const read = (offset: number) => options.mmio.read(options.base + offset, 4) >>> 0;
    if (read(VIRTIO_MMIO_MAGIC_VALUE) !== VIRTIO_MMIO_MAGIC) throw new PciError('NOT_VIRTIO', 'bad virtio-mmio magic value', { address: options.base });
    const version = read(VIRTIO_MMIO_VERSION);
    if (version !== VIRTIO_MMIO_VERSION_2) throw new PciError('NOT_VIRTIO', `virtio-mmio version ${version} is not supported (modern version 2 only)`, { address: options.base });
    const deviceType = read(VIRTIO_MMIO_DEVICE_ID);
    // "If the device ID is zero (0x0) the driver MUST ignore the device."
    if (deviceType === 0) throw new PciError('NOT_VIRTIO', 'virtio-mmio placeholder (device id 0)', { address: options.base });
    return new VirtioMmioTransport(options, deviceType);
  }

  getStatus(): number {
    return this.read(VIRTIO_MMIO_STATUS);
  }

  setStatus(status: number): void {
    this.write(VIRTIO_MMIO_STATUS, status & 0xff);
  }

  reset(): void {
    this.write(VIRTIO_MMIO_STATUS, 0);
    let polls = 0;
    while (this.getStatus() !== 0) {
      if (++polls > RESET_POLLS) throw new DeviceError('DEVICE_UNRESPONSIVE', 'Status never read back 0 after reset', { deviceType: this.deviceType });
    }
    for (const record of this.queues.values()) for (const area of record.areas) this.allocator.free(area);
    this.queues.clear();
    this.driverFeatures = 0n;
  }

  getDeviceFeatures(): Features {
    this.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const lo = this.read(VIRTIO_MMIO_DEVICE_FEATURES);
    this.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const hi = this.read(VIRTIO_MMIO_DEVICE_FEATURES);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  setDriverFeatures(features: Features): void {
    if (hasFeature(features, VIRTIO_F_NOTIFICATION_DATA)) {
      throw new DeviceError('UNSUPPORTED', 'this transport notifies with the queue index only; do not accept VIRTIO_F_NOTIFICATION_DATA');
    }
    this.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.write(VIRTIO_MMIO_DRIVER_FEATURES, featureWord(features, 0));
    this.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.write(VIRTIO_MMIO_DRIVER_FEATURES, featureWord(features, 1));
    this.driverFeatures = features;
  }

  getDriverFeatures(): Features {
    return this.driverFeatures;
  }

  getConfigGeneration(): number {
    return this.read(VIRTIO_MMIO_CONFIG_GENERATION);
  }

  readConfig(offset: number, length: number): Uint8Array {
    this.checkConfigRange(offset, length);
    const out = new Uint8Array(length);
    for (let attempt = 0; attempt < CONFIG_RETRIES; attempt++) {
      const before = this.getConfigGeneration();
      let done = 0;
      while (done < length) {
        const width = accessWidth(offset + done, length - done);
        let value = this.mmio.read(this.base + VIRTIO_MMIO_CONFIG + offset + done, width);
        for (let i = 0; i < width; i++) {
          out[done + i] = value & 0xff;
          value = Math.floor(value / 256);
        }
        done += width;
      }
      if (this.getConfigGeneration() === before) return out;
    }
    throw new DeviceError('DEVICE_UNRESPONSIVE', 'device configuration kept changing while being read (§2.5.1)', { deviceType: this.deviceType });
  }

  writeConfig(offset: number, data: Uint8Array): void {
    this.checkConfigRange(offset, data.length);
    let done = 0;
    while (done < data.length) {
      const width = accessWidth(offset + done, data.length - done);
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + data[done + i]!;
      this.mmio.write(this.base + VIRTIO_MMIO_CONFIG + offset + done, width, value);
      done += width;
    }
  }

  getQueueMaxSize(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_QUEUES) return 0;
    this.write(VIRTIO_MMIO_QUEUE_SEL, index);
    return this.read(VIRTIO_MMIO_QUEUE_NUM_MAX);
  }

  setupQueue<T>(index: number, options: QueueSetupOptions = {}): DriverQueue<T> {
    if (index >= this.numQueues) throw new DeviceError('INVALID_ARGUMENT', 'queue is unavailable', { queue: index });
    if (this.queues.has(index)) throw new DeviceError('INVALID_ARGUMENT', 'queue is already set up', { queue: index });
    const max = this.getQueueMaxSize(index);
    // §4.2.3.2: "Check if the queue is not already in use: read QueueReady, and expect a returned value of zero".
    if (this.read(VIRTIO_MMIO_QUEUE_READY) !== 0) throw new DeviceError('INVALID_ARGUMENT', 'queue is already in use', { queue: index });
    const allocated = allocateDriverQueue<T>(index, max, this.driverFeatures, options, this.memory, this.allocator, this.queueFactory);
    const { queue, desc, driver, device } = allocated;
    const areas = [...allocated.allocations];
    this.write(VIRTIO_MMIO_QUEUE_NUM, queue.size);
    this.write(VIRTIO_MMIO_QUEUE_DESC_LOW, desc % 0x1_0000_0000);
    this.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, Math.floor(desc / 0x1_0000_0000));
    this.write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, driver % 0x1_0000_0000);
    this.write(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, Math.floor(driver / 0x1_0000_0000));
    this.write(VIRTIO_MMIO_QUEUE_USED_LOW, device % 0x1_0000_0000);
    this.write(VIRTIO_MMIO_QUEUE_USED_HIGH, Math.floor(device / 0x1_0000_0000));
    this.write(VIRTIO_MMIO_QUEUE_READY, 1);
    this.queues.set(index, { areas, handler: options.onInterrupt });
    return queue;
  }

  notify(index: number): void {
    if (!this.queues.has(index)) throw new DeviceError('INVALID_ARGUMENT', 'notify of a queue that is not set up', { queue: index });
    this.write(VIRTIO_MMIO_QUEUE_NOTIFY, index);
  }

  onConfigChange(handler: () => void): void {
    this.configHandler = handler;
  }

  /**
   * The interrupt line is asserted (§4.2.3.4): reads InterruptStatus, acknowledges exactly those
   * bits and runs the handlers. Returns false when no bit was set.
   */
  handleInterrupt(): boolean {
    const status = this.read(VIRTIO_MMIO_INTERRUPT_STATUS);
    if (status === 0) return false;
    this.write(VIRTIO_MMIO_INTERRUPT_ACK, status);
    if ((status & VIRTIO_MMIO_INT_CONFIG) !== 0) this.configHandler?.();
    if ((status & VIRTIO_MMIO_INT_VRING) !== 0) for (const record of [...this.queues.values()]) record.handler?.();
    return true;
  }

  private checkConfigRange(offset: number, length: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.configLength) {
      throw new DeviceError('INVALID_ARGUMENT', 'device configuration access out of range', { offset, size: length });
    }
  }

  private read(register: number): number {
    return this.mmio.read(this.base + register, 4) >>> 0;
  }

  private write(register: number, value: number): void {
    this.mmio.write(this.base + register, 4, value >>> 0);
  }
}

function accessWidth(offset: number, remaining: number): 1 | 2 | 4 {
  if (remaining >= 4 && offset % 4 === 0) return 4;
  if (remaining >= 2 && offset % 2 === 0) return 2;
  return 1;
}
