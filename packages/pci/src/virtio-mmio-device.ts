import type { GuestMemory } from '@virtio-ts/memory';
import {
  DeviceCore,
  DeviceError,
  VIRTIO_F_NOTIFICATION_DATA,
  hasFeature,
  type DeviceCoreState,
  type Interrupt,
  type Notifier,
  type QueueFactory,
  type VirtioDevice,
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
  VIRTIO_MMIO_QUEUE_RESET,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_SHM_BASE_HIGH,
  VIRTIO_MMIO_SHM_BASE_LOW,
  VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_SHM_SEL,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_MMIO_VERSION_2,
} from './constants.js';
import type { IntxLine } from './platform.js';
import { littleEndian, writeLittleEndian } from './virtio-pci-device.js';

/** Options of {@link VirtioMmioDevice}. */
export interface VirtioMmioDeviceOptions {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  /** The device's interrupt line: asserted while InterruptStatus is non-zero. */
  readonly interrupt?: IntxLine;
  readonly notifier?: Notifier;
  readonly queueFactory?: QueueFactory;
  /** VendorID register; default "QEMU" (0x554d4551), as QEMU presents. */
  readonly vendorId?: number;
  readonly onError?: (error: DeviceError) => void;
}

/** A plain, JSON-serialisable snapshot of a {@link VirtioMmioDevice}. */
export interface VirtioMmioDeviceState {
  readonly version: 1;
  readonly deviceFeatureSelect: number;
  readonly driverFeatureSelect: number;
  readonly queueSelect: number;
  readonly interruptStatus: number;
  readonly core: DeviceCoreState;
}

/** Size of the register window a VMM maps per device: registers, then the configuration space. */
export const VIRTIO_MMIO_WINDOW_SIZE = 0x200;

/**
 * The device side of virtio-mmio version 2 (VIRTIO 1.3 §4.2): the register map at 0x000–0x0fc and
 * the device configuration from 0x100. Registers take aligned 32-bit accesses only (§4.2.2.2);
 * the configuration space takes 1, 2, 4 or 8 bytes. No shared memory regions: SHMLen and SHMBase
 * read as -1 for every SHMSel. Nothing the guest does makes it throw.
 */
export class VirtioMmioDevice {
  readonly core: DeviceCore;
  private readonly line: IntxLine | undefined;
  private readonly vendorId: number;
  private readonly notificationDataOffered: boolean;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private queueSelect = 0;
  private interruptStatus = 0;
  private level = false;

  constructor(options: VirtioMmioDeviceOptions) {
    const interrupt: Interrupt = {
      signalQueue: () => this.raise(VIRTIO_MMIO_INT_VRING),
      signalConfig: () => this.raise(VIRTIO_MMIO_INT_CONFIG),
    };
    this.core = new DeviceCore({
      device: options.device,
      memory: options.memory,
      interrupt,
      queueFactory: options.queueFactory,
      notifier: options.notifier,
      onError: options.onError,
    });
    this.line = options.interrupt;
    this.vendorId = (options.vendorId ?? 0x554d4551) >>> 0;
    this.notificationDataOffered = hasFeature(this.core.offeredFeatures, VIRTIO_F_NOTIFICATION_DATA);
  }

  /** InterruptStatus without side effects. */
  get interruptStatusValue(): number {
    return this.interruptStatus;
  }

  /** A snapshot of the registers and the device core. */
  saveState(): VirtioMmioDeviceState {
    return {
      version: 1,
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      queueSelect: this.queueSelect,
      interruptStatus: this.interruptStatus,
      core: this.core.saveState(),
    };
  }

  /** Restores a {@link saveState} snapshot, all or nothing; throws DeviceError INVALID_STATE. */
  restoreState(state: unknown): void {
    const invalid = (message: string): never => {
      throw new DeviceError('INVALID_STATE', message, { deviceType: this.core.device.deviceType });
    };
    if (typeof state !== 'object' || state === null) return invalid('state must be an object');
    const s = state as Record<string, unknown>;
    const u32 = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
    if (s.version !== 1) invalid(`unsupported state version ${String(s.version)}`);
    if (!u32(s.deviceFeatureSelect) || !u32(s.driverFeatureSelect) || !u32(s.queueSelect)) invalid('selectors must be u32');
    if (!u32(s.interruptStatus) || (s.interruptStatus as number) > 3) invalid('interruptStatus must be 0..3');
    this.core.restoreState(s.core);
    this.deviceFeatureSelect = s.deviceFeatureSelect as number;
    this.driverFeatureSelect = s.driverFeatureSelect as number;
    this.queueSelect = s.queueSelect as number;
    this.interruptStatus = s.interruptStatus as number;
    this.updateLine();
  }

  mmioRead(offset: number, size: number): number {
    if (offset >= VIRTIO_MMIO_CONFIG) return this.configRead(offset - VIRTIO_MMIO_CONFIG, size);
    if (!this.registerAccessOk(offset, size, 'read')) return 0;
    const core = this.core;
    const q = core.queue(this.queueSelect);
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_2;
      case VIRTIO_MMIO_DEVICE_ID:
        return core.device.deviceType;
      case VIRTIO_MMIO_VENDOR_ID:
        return this.vendorId;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return core.deviceFeatureWord(this.deviceFeatureSelect);
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        // "zero (0x0) if the queue is not available"
        return q?.maxSize ?? 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.enabled === true ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return core.status;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return q?.descLo ?? 0;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        return q?.descHi ?? 0;
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
        return q?.driverLo ?? 0;
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
        return q?.driverHi ?? 0;
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        return q?.deviceLo ?? 0;
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        return q?.deviceHi ?? 0;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        // "Reading from a non-existent region ... results in a length of -1": no region exists.
        return 0xffff_ffff;
      case VIRTIO_MMIO_QUEUE_RESET:
        // Queue resets complete synchronously: 0 once done (§4.2.2.1).
        return 0;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return core.configGeneration;
      default:
        core.report(new DeviceError('INVALID_ACCESS', 'read of a write-only or undefined virtio-mmio register', { offset, size }));
        return 0;
    }
  }

  mmioWrite(offset: number, size: number, value: number): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.configWrite(offset - VIRTIO_MMIO_CONFIG, size, value);
      return;
    }
    if (!this.registerAccessOk(offset, size, 'write')) return;
    const core = this.core;
    const v = value >>> 0;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeatureSelect = v;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        core.writeDriverFeatureWord(this.driverFeatureSelect, v);
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeatureSelect = v;
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        this.queueSelect = v;
        return;
      case VIRTIO_MMIO_QUEUE_NUM:
        core.setQueueSize(this.queueSelect, v);
        return;
      case VIRTIO_MMIO_QUEUE_READY:
        if (v === 1) core.enableQueue(this.queueSelect);
        else if (core.queue(this.queueSelect)?.enabled === true) {
          // Stopping one queue of a running device is a queue reset (§2.6.1).
          core.resetQueue(this.queueSelect);
        }
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY: {
        // §4.2.3.4: the queue index, or with VIRTIO_F_NOTIFICATION_DATA index | data << 16.
        const withData = this.notificationDataOffered && hasFeature(core.negotiatedFeatures, VIRTIO_F_NOTIFICATION_DATA);
        core.queueNotify(withData ? v & 0xffff : v, withData ? v >>> 16 : undefined);
        return;
      }
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~v;
        this.updateLine();
        return;
      case VIRTIO_MMIO_STATUS:
        core.writeStatus(v);
        if (v === 0) {
          // "Upon reset, the device MUST clear all bits in InterruptStatus and ready bits in the QueueReady register for all queues".
          this.interruptStatus = 0;
          this.deviceFeatureSelect = 0;
          this.driverFeatureSelect = 0;
          this.queueSelect = 0;
          this.updateLine();
        }
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return core.setQueueAddressHalf(this.queueSelect, 'desc', false, v);
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        return core.setQueueAddressHalf(this.queueSelect, 'desc', true, v);
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
        return core.setQueueAddressHalf(this.queueSelect, 'driver', false, v);
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
        return core.setQueueAddressHalf(this.queueSelect, 'driver', true, v);
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        return core.setQueueAddressHalf(this.queueSelect, 'device', false, v);
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        return core.setQueueAddressHalf(this.queueSelect, 'device', true, v);
      case VIRTIO_MMIO_SHM_SEL:
        return; // any id selects "no region"
      case VIRTIO_MMIO_QUEUE_RESET:
        if (v === 1) core.resetQueue(this.queueSelect);
        return;
      default:
        core.report(new DeviceError('INVALID_ACCESS', 'write to a read-only or undefined virtio-mmio register', { offset, size }));
    }
  }

  private configRead(offset: number, size: number): number {
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'configuration read of an invalid width', { offset, size }));
      return 0;
    }
    const data = new Uint8Array(size);
    this.core.readConfig(offset, data);
    return littleEndian(data);
  }

  private configWrite(offset: number, size: number, value: number): void {
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'configuration write of an invalid width', { offset, size }));
      return;
    }
    const data = new Uint8Array(size);
    writeLittleEndian(data, value);
    this.core.writeConfig(offset, data);
  }

  private registerAccessOk(offset: number, size: number, op: string): boolean {
    // §4.2.2.2: "The driver MUST only use 32 bit wide and aligned reads and writes to access the control registers".
    const ok = size === 4 && Number.isInteger(offset) && offset >= 0 && offset % 4 === 0;
    if (!ok) this.core.report(new DeviceError('INVALID_ACCESS', `virtio-mmio register ${op} must be 32-bit and aligned`, { offset, size }));
    return ok;
  }

  private raise(bit: number): void {
    this.interruptStatus |= bit;
    this.updateLine();
  }

  private updateLine(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.level) {
      this.level = level;
      this.line?.setLevel(level);
    }
  }
}
