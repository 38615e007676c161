import {
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureBits,
  negotiateFeatures,
  setDriverOk,
  type Features,
  type VirtioTransport,
} from '@virtio-ts/device';
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VirtqueueClient } from '../virtqueue-client.js';

/** Options of {@link RngDriver.init}. */
export interface RngDriverOptions {
  readonly queueSize?: number;
  /** Size of each buffer posted to the device. Default 4096. */
  readonly bufferSize?: number;
}

const SUPPORTED = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED);

/**
 * A virtio-rng front-end driver model (VIRTIO 1.3 §5.4), like Linux's virtio-rng: posts
 * device-writable buffers and takes as many bytes as the device reports in the used length.
 *
 * @example
 * ```ts
 * const rng = RngDriver.init(transport);
 * const key = await rng.read(32);
 * ```
 */
export class RngDriver {
  private readonly queue: VirtqueueClient;
  private readonly bufferSize: number;

  private constructor(
    readonly transport: VirtioTransport,
    readonly features: Features,
    options: RngDriverOptions,
  ) {
    this.queue = new VirtqueueClient(transport, 0, options.queueSize !== undefined ? { size: options.queueSize } : {});
    this.bufferSize = options.bufferSize ?? 4096;
  }

  /** Initialises the device (§3.1.1). */
  static init(transport: VirtioTransport, options: RngDriverOptions = {}): RngDriver {
    const features = negotiateFeatures(transport, SUPPORTED);
    const driver = new RngDriver(transport, features, options);
    setDriverOk(transport);
    return driver;
  }

  /** Exactly `length` random bytes (several device requests if needed). */
  async read(length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(length) || length < 0) throw new DriverError('INVALID_ARGUMENT', 'length must be a non-negative integer', { device: 'rng', length });
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const buffer = new DmaBuffer(this.transport.allocator, Math.min(this.bufferSize, length - done));
      try {
        // §5.4.6.1: the driver MUST NOT place device-readable buffers; it MUST examine the used length.
        const used = await this.queue.submit([], buffer.segments());
        if (used === 0) throw new DriverError('PROTOCOL', 'the device returned a buffer with no random bytes (§5.4.6.2: MUST place one or more)', { device: 'rng' });
        out.set(buffer.read(0, used), done);
        done += used;
      } finally {
        buffer.free();
      }
    }
    return out;
  }

  /** Resets the device; pending reads reject with DEVICE_RESET. */
  reset(): void {
    this.queue.close();
    this.transport.reset();
  }
}
