import type { GuestMemory } from '@virtio-ts/memory';
import type { DriverQueue } from '@virtio-ts/ring';
import type { Features } from './features.js';
import type { GuestAllocator } from './guest-allocator.js';

/** How {@link VirtioTransport.setupQueue} builds a queue. */
export interface QueueSetupOptions {
  /** Queue size; defaults to the device's maximum for the queue. Split sizes must be powers of two. */
  readonly size?: number;
  /**
   * Ring layout; defaults to the negotiated one (packed iff VIRTIO_F_RING_PACKED was accepted).
   * Asking for 'packed' without having negotiated it throws INVALID_ARGUMENT.
   */
  readonly layout?: 'split' | 'packed';
  /** Called (synchronously, from the transport's interrupt handling) when the device signals this queue. */
  readonly onInterrupt?: () => void;
  /**
   * Indirect tables (§2.7.5.3 / §2.8.7) when VIRTIO_RING_F_INDIRECT_DESC is negotiated: the
   * longest chain one table holds (2..size; default min(size, 8)), and the chain length from which
   * the queue goes indirect (default 2, as Linux).
   */
  readonly indirect?: { readonly maxDescriptors?: number; readonly threshold?: number };
}

/**
 * The driver side of a transport (virtio-pci, virtio-mmio): what front-end drivers program against
 * (VIRTIO 1.3 §3.1 "Device Initialization"). Synchronous; each call may be a register access
 * that exits to the VMM.
 *
 * A driver's life, as in §3.1.1 (or use {@link negotiateFeatures} and {@link setDriverOk}):
 * `reset()`; `setStatus(ACKNOWLEDGE)`; `setStatus(ACKNOWLEDGE | DRIVER)`; read
 * `getDeviceFeatures()`, `setDriverFeatures(subset)`; `setStatus(... | FEATURES_OK)` and check
 * that it stuck; `setupQueue(i)` for each queue; `setStatus(... | DRIVER_OK)`.
 */
export interface VirtioTransport {
  /** §5 device id of the device behind the transport. */
  readonly deviceType: number;
  /** Guest memory the rings live in. */
  readonly memory: GuestMemory;
  /** Allocator for rings (used by `setupQueue`) and for the driver's own buffers. */
  readonly allocator: GuestAllocator;
  /** Number of virtqueues the device has (pci: num_queues; mmio: probed through QueueSizeMax). */
  readonly numQueues: number;

  /** The device_status byte (§2.1). */
  getStatus(): number;
  /** Writes device_status. The driver only adds bits; use `reset()` to write 0. */
  setStatus(status: number): void;
  /**
   * Device reset (§2.4): writes 0 and waits until device_status reads back 0. Queues set up
   * before are forgotten (their memory is freed); interrupt callbacks are dropped.
   */
  reset(): void;

  /** All 64 offered feature bits. */
  getDeviceFeatures(): Features;
  /** Writes the driver's accepted feature set (both words). */
  setDriverFeatures(features: Features): void;
  /** The feature set last written with `setDriverFeatures` (what the rings are built with). */
  getDriverFeatures(): Features;

  /** The current 8-bit config generation (§2.5.1). */
  getConfigGeneration(): number;
  /**
   * Reads `length` bytes of device-specific configuration at `offset`, retrying until the config
   * generation is the same before and after (§2.5.1, driver side). Throws DEVICE_UNRESPONSIVE
   * when the configuration never settles.
   */
  readConfig(offset: number, length: number): Uint8Array;
  /** Writes device-specific configuration. */
  writeConfig(offset: number, data: Uint8Array): void;

  /** Maximum size of queue `index`; 0 when the queue is unavailable. */
  getQueueMaxSize(index: number): number;
  /**
   * Allocates and programs queue `index` with the negotiated ring features, enables it, and
   * returns its driver side. Call after FEATURES_OK and before DRIVER_OK (§3.1.1 step 7).
   */
  setupQueue<T>(index: number, options?: QueueSetupOptions): DriverQueue<T>;
  /** Available buffer notification for queue `index` (the "kick"). */
  notify(index: number): void;

  /** Registers the configuration change handler (§2.5.2); replaces an earlier one. */
  onConfigChange(handler: () => void): void;
}
