import type { GuestMemory } from '@virtio-ts/memory';
import type { DeviceQueue } from '@virtio-ts/ring';
import type { Features } from './features.js';

/**
 * How a device tells the driver something happened (VIRTIO 1.3 §2.3). Injected by the transport:
 * virtio-pci maps it to the queue's MSI-X vector or to ISR + INTx, virtio-mmio to
 * InterruptStatus + its interrupt line; a VMM may post it to a vCPU's interrupt word.
 *
 * Both calls are cheap and never throw; a call after the device was reset is dropped.
 */
export interface Interrupt {
  /** A used buffer notification for queue `index` (§2.3.2). */
  signalQueue(index: number): void;
  /** A configuration change notification (§2.3.1), also sent when the device sets DEVICE_NEEDS_RESET. */
  signalConfig(): void;
}

/**
 * How a transport delivers a driver's available buffer notification (§2.3.3, "queue notify")
 * to the device. The default delivers synchronously by calling {@link VirtioDevice.queueNotify};
 * a VMM can inject one that rings a doorbell word instead (the model guest's ioeventfd).
 */
export interface Notifier {
  /**
   * Queue `index` has new available buffers. `data` is the notification data of
   * VIRTIO_F_NOTIFICATION_DATA (§2.3.3) when negotiated, otherwise undefined.
   */
  notify(index: number, data?: number): void;
}

/** Everything a device receives when the driver sets DRIVER_OK (§3.1.1 step 8). */
export interface ActivationContext {
  /** Guest memory the queues and their buffers live in. */
  readonly memory: GuestMemory;
  /** The negotiated feature set (accepted at FEATURES_OK). Ring features are already applied to the queues. */
  readonly features: Features;
  /**
   * One entry per queue the device declared (`queueMaxSizes`): the device side of the queue the
   * driver enabled, or `null` for a queue the driver left disabled. Constructed with the
   * negotiated ring features (packed, event idx, indirect, in order).
   */
  readonly queues: readonly (DeviceQueue | null)[];
  /** Used-buffer and config-change notifications to the driver. */
  readonly interrupt: Interrupt;
  /**
   * Marks the device broken (§2.1.2): sets DEVICE_NEEDS_RESET and sends a config change
   * notification. Use for a fatal guest error such as a broken ring. Never throws.
   */
  markNeedsReset(reason?: string): void;
}

/**
 * The device model (VIRTIO 1.3 §2, §3): what a transport needs from a device.
 *
 * The transport (virtio-pci, virtio-mmio, vhost-user) owns the status state machine, feature
 * negotiation and queue configuration through {@link DeviceCore}; the device only declares its
 * features, queues and configuration space, and runs once activated.
 *
 * Lifecycle: `activate` once per DRIVER_OK, then `queueNotify` as the driver kicks, then
 * `reset` (driver wrote 0 to device_status) — and possibly `activate` again.
 *
 * Guest faults are not exceptions: a device that throws from `activate`, `queueNotify`,
 * `readConfig` or `writeConfig` is marked DEVICE_NEEDS_RESET by the transport.
 *
 * @example
 * ```ts
 * class RngDevice implements VirtioDevice {
 *   readonly deviceType = VIRTIO_ID_RNG;
 *   readonly deviceFeatures = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX);
 *   readonly queueMaxSizes = [256];
 *   readonly configSize = 0;
 *   readonly configGeneration = 0;
 *   private context: ActivationContext | undefined;
 *   readConfig(): void {}
 *   writeConfig(): void {}
 *   activate(context: ActivationContext): void { this.context = context; }
 *   reset(): void { this.context = undefined; }
 *   queueNotify(index: number): void { ... pop, fill, pushUsed, signalQueue ... }
 * }
 * ```
 */
export interface VirtioDevice {
  /** §5 device id (VIRTIO_ID_*). */
  readonly deviceType: number;
  /**
   * The features the device offers (64-bit mask, bit n = feature n). Must include
   * VIRTIO_F_VERSION_1: this is a modern-only implementation. Ring features listed here
   * (packed, event idx, indirect, in order) are implemented by the ring layer.
   */
  readonly deviceFeatures: Features;
  /**
   * Features the driver must accept or FEATURES_OK is refused (§2.2.1). VIRTIO_F_VERSION_1 is
   * always required, whether listed here or not.
   */
  readonly requiredFeatures?: Features;
  /** One entry per virtqueue: its maximum size (1..32768; a power of two when split rings are possible). */
  readonly queueMaxSizes: readonly number[];
  /** Size in bytes of the device-specific configuration space (§2.5); 0 when it has none. */
  readonly configSize: number;
  /**
   * A counter the device increments whenever its configuration space changes. The transport
   * derives the 8-bit `config_generation` from it (§2.5.1: changed whenever the driver could see
   * an inconsistent configuration).
   */
  readonly configGeneration: number;
  /**
   * Reads `data.length` bytes of configuration space at `offset`. The transport guarantees
   * `offset + data.length <= configSize`.
   */
  readConfig(offset: number, data: Uint8Array): void;
  /** Writes configuration space (only fields the device type makes writable; others are ignored). */
  writeConfig(offset: number, data: Uint8Array): void;
  /**
   * Optional device-specific feature validation at FEATURES_OK (§2.2.1: a device MAY refuse a
   * combination it cannot support, e.g. a feature that depends on another). Return false to refuse.
   */
  validateFeatures?(features: Features): boolean;
  /** The driver set DRIVER_OK: start processing. */
  activate(context: ActivationContext): void;
  /** The driver wrote 0 to device_status (§2.4): drop every queue and return to the initial state. */
  reset(): void;
  /** Available buffer notification for queue `index` (called only for enabled queues while active). */
  queueNotify(index: number, data?: number): void;
  /**
   * Optional (§2.6.1, VIRTIO_F_RING_RESET): queue `index` was reset on its own while the device
   * is active. The device must stop using the queue it was given. The transport offers
   * VIRTIO_F_RING_RESET only when the device implements both this and `queueEnable`.
   */
  queueReset?(index: number): void;
  /** Optional (§2.6.1): queue `index` was enabled again after a queue reset, while the device is active. */
  queueEnable?(index: number, queue: DeviceQueue): void;
  /**
   * Optional: the transport is about to stop the rings and waits until every popped buffer is
   * used (vhost-user GET_VRING_BASE, a memory table change). A device that holds buffers with no
   * work pending on them (a net device's receive buffers kept for a frame that did not fit yet)
   * gives them back now instead of waiting for the guest. Never throws.
   */
  quiesce?(): void;
  /** Optional capability: a plain serialisable snapshot of device state (config, counters). */
  saveState?(): unknown;
  /** Optional capability: restores a snapshot made by `saveState` (validate it: it is untrusted). */
  restoreState?(state: unknown): void;
}
