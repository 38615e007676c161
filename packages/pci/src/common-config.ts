import { DeviceError, type DeviceCore } from '@virtio-ts/device';
import {
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_COMMON_ADM_Q_IDX,
  VIRTIO_PCI_COMMON_ADM_Q_NUM,
  VIRTIO_PCI_COMMON_CFGGENERATION,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_AVAILHI,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCHI,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_NDATA,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_RESET,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDHI,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
} from './constants.js';
import type { AccessSize } from './platform.js';

interface Field {
  readonly size: 1 | 2 | 4;
  readonly read: () => number;
  /** Absent for read-only fields. */
  readonly write?: (value: number) => void;
}

/**
 * struct virtio_pci_common_cfg (VIRTIO 1.3 §4.1.4.3) over a {@link DeviceCore}: every field, each
 * accessed at its natural width (64-bit fields as two 32-bit halves or one 8-byte access, §4.1.3).
 * Any other access is recorded as INVALID_ACCESS: reads give 0, writes are dropped.
 */
export class CommonConfig {
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  queueSelect = 0;
  configVector = VIRTIO_MSI_NO_VECTOR;
  readonly queueVectors: Uint16Array;
  private readonly fields = new Map<number, Field>();

  constructor(
    private readonly core: DeviceCore,
    /** MSI-X table size: vectors at or above it cannot be mapped (read back NO_VECTOR, §4.1.5.1.2). */
    private readonly vectorCount: number,
    /** Transport state to clear when the driver resets the device (ISR, INTx). */
    private readonly onDeviceReset: () => void = () => undefined,
  ) {
    this.queueVectors = new Uint16Array(core.numQueues).fill(VIRTIO_MSI_NO_VECTOR);
    const q = () => core.queue(this.queueSelect);
    const define = (offset: number, field: Field) => this.fields.set(offset, field);
    define(VIRTIO_PCI_COMMON_DFSELECT, { size: 4, read: () => this.deviceFeatureSelect, write: (v) => (this.deviceFeatureSelect = v >>> 0) });
    define(VIRTIO_PCI_COMMON_DF, { size: 4, read: () => core.deviceFeatureWord(this.deviceFeatureSelect) });
    define(VIRTIO_PCI_COMMON_GFSELECT, { size: 4, read: () => this.driverFeatureSelect, write: (v) => (this.driverFeatureSelect = v >>> 0) });
    define(VIRTIO_PCI_COMMON_GF, {
      size: 4,
      read: () => core.driverFeatureWord(this.driverFeatureSelect),
      write: (v) => core.writeDriverFeatureWord(this.driverFeatureSelect, v),
    });
    define(VIRTIO_PCI_COMMON_MSIX, { size: 2, read: () => this.configVector, write: (v) => (this.configVector = this.mapVector(v)) });
    define(VIRTIO_PCI_COMMON_NUMQ, { size: 2, read: () => core.numQueues });
    define(VIRTIO_PCI_COMMON_STATUS, { size: 1, read: () => core.status, write: (v) => this.writeStatus(v) });
    define(VIRTIO_PCI_COMMON_CFGGENERATION, { size: 1, read: () => core.configGeneration });
    define(VIRTIO_PCI_COMMON_Q_SELECT, { size: 2, read: () => this.queueSelect, write: (v) => (this.queueSelect = v & 0xffff) });
    // §4.1.4.3.1: "The device MUST present a 0 in queue_size if the virtqueue ... is unavailable."
    define(VIRTIO_PCI_COMMON_Q_SIZE, { size: 2, read: () => q()?.size ?? 0, write: (v) => core.setQueueSize(this.queueSelect, v) });
    define(VIRTIO_PCI_COMMON_Q_MSIX, {
      size: 2,
      read: () => this.queueVectors[this.queueSelect] ?? VIRTIO_MSI_NO_VECTOR,
      write: (v) => {
        if (this.queueSelect < this.queueVectors.length) this.queueVectors[this.queueSelect] = this.mapVector(v);
        else core.report(new DeviceError('INVALID_QUEUE', 'queue_msix_vector of a queue that does not exist', { queue: this.queueSelect }));
      },
    });
    define(VIRTIO_PCI_COMMON_Q_ENABLE, {
      size: 2,
      read: () => (q()?.enabled === true ? 1 : 0),
      write: (v) => {
        // §4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable."
        if ((v & 0xffff) === 1) core.enableQueue(this.queueSelect);
        else core.report(new DeviceError('INVALID_ACCESS', 'queue_enable accepts only 1', { queue: this.queueSelect }));
      },
    });
    // Each queue has its own notify address: queue_notify_off = the queue index.
    define(VIRTIO_PCI_COMMON_Q_NOFF, { size: 2, read: () => (q() === undefined ? 0 : this.queueSelect) });
    const half = (area: 'desc' | 'driver' | 'device', high: boolean): Field => ({
      size: 4,
      read: () => {
        const c = q();
        if (c === undefined) return 0;
        if (area === 'desc') return high ? c.descHi : c.descLo;
        if (area === 'driver') return high ? c.driverHi : c.driverLo;
        return high ? c.deviceHi : c.deviceLo;
      },
      write: (v) => core.setQueueAddressHalf(this.queueSelect, area, high, v),
    });
    define(VIRTIO_PCI_COMMON_Q_DESCLO, half('desc', false));
    define(VIRTIO_PCI_COMMON_Q_DESCHI, half('desc', true));
    define(VIRTIO_PCI_COMMON_Q_AVAILLO, half('driver', false));
    define(VIRTIO_PCI_COMMON_Q_AVAILHI, half('driver', true));
    define(VIRTIO_PCI_COMMON_Q_USEDLO, half('device', false));
    define(VIRTIO_PCI_COMMON_Q_USEDHI, half('device', true));
    // §4.1.4.3: "In a trivial case the device can set queue_notif_config_data to the virtqueue index."
    define(VIRTIO_PCI_COMMON_Q_NDATA, { size: 2, read: () => (q() === undefined ? 0 : this.queueSelect) });
    // Queue reset completes synchronously: queue_reset reads 0 once it is done (§4.1.4.3.1).
    define(VIRTIO_PCI_COMMON_Q_RESET, {
      size: 2,
      read: () => 0,
      write: (v) => {
        if ((v & 0xffff) === 1) core.resetQueue(this.queueSelect);
      },
    });
    // No administration virtqueues (VIRTIO_F_ADMIN_VQ is never offered): both read 0.
    define(VIRTIO_PCI_COMMON_ADM_Q_IDX, { size: 2, read: () => 0 });
    define(VIRTIO_PCI_COMMON_ADM_Q_NUM, { size: 2, read: () => 0 });
  }

  /** Vector mapping of queue `index` (NO_VECTOR for an unknown queue). */
  queueVector(index: number): number {
    return this.queueVectors[index] ?? VIRTIO_MSI_NO_VECTOR;
  }

  /** Transport state reset with the device (§4.1.5.1.2: "all queue and configuration change events are unmapped upon reset"). */
  reset(): void {
    this.queueVectors.fill(VIRTIO_MSI_NO_VECTOR);
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.queueSelect = 0;
  }

  /** Selectors and vector mappings (for a snapshot). */
  saveState(): { deviceFeatureSelect: number; driverFeatureSelect: number; queueSelect: number; configVector: number; queueVectors: number[] } {
    return {
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      queueSelect: this.queueSelect,
      configVector: this.configVector,
      queueVectors: [...this.queueVectors],
    };
  }

  /** Why saved selectors/vectors cannot be restored, or undefined. */
  stateProblem(state: unknown): string | undefined {
    if (typeof state !== 'object' || state === null) return 'common must be an object';
    const s = state as Record<string, unknown>;
    const isU = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
    const vectorOk = (v: unknown) => isU(v, 0xffff) && (v === VIRTIO_MSI_NO_VECTOR || (v as number) < this.vectorCount);
    if (!isU(s.deviceFeatureSelect, 0xffff_ffff) || !isU(s.driverFeatureSelect, 0xffff_ffff) || !isU(s.queueSelect, 0xffff)) return 'selectors out of range';
    if (!vectorOk(s.configVector)) return 'configVector is not a vector of this table';
    if (!Array.isArray(s.queueVectors) || s.queueVectors.length !== this.queueVectors.length || !s.queueVectors.every(vectorOk)) return 'queueVectors invalid';
    return undefined;
  }

  /** Restores a state checked by {@link stateProblem}. */
  restoreState(state: ReturnType<CommonConfig['saveState']>): void {
    this.deviceFeatureSelect = state.deviceFeatureSelect;
    this.driverFeatureSelect = state.driverFeatureSelect;
    this.queueSelect = state.queueSelect;
    this.configVector = state.configVector;
    this.queueVectors.set(state.queueVectors);
  }

  read(offset: number, size: AccessSize): number {
    if (size === 8) {
      if (!this.isHalfOf64(offset)) return this.invalid(offset, size, 'read');
      return this.read(offset + 4, 4) * 0x1_0000_0000 + this.read(offset, 4);
    }
    const field = this.fields.get(offset);
    if (field === undefined || field.size !== size) return this.invalid(offset, size, 'read');
    return field.read();
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size === 8) {
      if (!this.isHalfOf64(offset)) {
        this.invalid(offset, size, 'write');
        return;
      }
      this.write(offset, 4, value % 0x1_0000_0000);
      this.write(offset + 4, 4, Math.floor(value / 0x1_0000_0000) >>> 0);
      return;
    }
    const field = this.fields.get(offset);
    if (field === undefined || field.size !== size) {
      this.invalid(offset, size, 'write');
      return;
    }
    if (field.write === undefined) {
      // §4.1.4.3.2: "The driver MUST NOT write to device_feature, num_queues, config_generation, queue_notify_off or queue_notif_config_data."
      this.core.report(new DeviceError('INVALID_ACCESS', 'write to a read-only common_cfg field', { offset, size }));
      return;
    }
    field.write(value);
  }

  private writeStatus(value: number): void {
    this.core.writeStatus(value & 0xff);
    if ((value & 0xff) === 0) {
      this.reset();
      this.onDeviceReset();
    }
  }

  private mapVector(value: number): number {
    const v = value & 0xffff;
    // §4.1.5.1.2: a mapping that fails reads back NO_VECTOR.
    return v === VIRTIO_MSI_NO_VECTOR || v < this.vectorCount ? v : VIRTIO_MSI_NO_VECTOR;
  }

  private isHalfOf64(offset: number): boolean {
    return offset === VIRTIO_PCI_COMMON_Q_DESCLO || offset === VIRTIO_PCI_COMMON_Q_AVAILLO || offset === VIRTIO_PCI_COMMON_Q_USEDLO;
  }

  private invalid(offset: number, size: number, op: string): number {
    this.core.report(new DeviceError('INVALID_ACCESS', `common_cfg ${op} of ${size} bytes at an offset that is not a field of that width`, { offset, size }));
    return 0;
  }
}
