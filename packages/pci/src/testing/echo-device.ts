import { RingError } from '@virtio-ts/ring';
import { VIRTIO_F_VERSION_1, featureBit, type ActivationContext, type Features, type VirtioDevice } from '@virtio-ts/device';

/** Device id the echo device presents: one reserved for experiments would be ideal; 0x3f is unused by §5. */
export const ECHO_DEVICE_ID = 0x3f;

/**
 * A small test device: queue 0 copies each chain's readable bytes into its writable bytes
 * (truncated to the writable length) and returns it with the number of bytes written. Its
 * 8-byte configuration space holds a read-only u32 `counter` (bumped by {@link bumpConfig}, which
 * also sends a configuration change notification) and a writable u32 `scratch`.
 */
export class EchoDevice implements VirtioDevice {
  readonly deviceType = ECHO_DEVICE_ID;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 8;
  configGeneration = 0;
  /** The context of the current activation (undefined while reset). */
  context: ActivationContext | undefined;
  /** Chains completed, and chains refused by the ring, since construction. */
  completed = 0;
  ringErrors = 0;
  private readonly config = new DataView(new ArrayBuffer(8));

  constructor(options: { features?: Features; queueSizes?: readonly number[] } = {}) {
    this.deviceFeatures = (options.features ?? 0n) | featureBit(VIRTIO_F_VERSION_1);
    this.queueMaxSizes = options.queueSizes ?? [256];
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(new Uint8Array(this.config.buffer, offset, data.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    // Only `scratch` (bytes 4..7) is writable.
    for (let i = 0; i < data.length; i++) if (offset + i >= 4) this.config.setUint8(offset + i, data[i]!);
  }

  activate(context: ActivationContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
  }

  /** Changes the configuration (counter + 1) and tells the driver (§2.5.2). */
  bumpConfig(): void {
    this.config.setUint32(0, this.config.getUint32(0, true) + 1, true);
    this.configGeneration++;
    this.context?.interrupt.signalConfig();
  }

  queueNotify(index: number): void {
    const context = this.context;
    const queue = context?.queues[index];
    if (context === undefined || queue === undefined || queue === null) return;
    for (;;) {
      let chain;
      try {
        chain = queue.pop();
      } catch (error) {
        this.ringErrors++;
        if (RingError.isInstance(error) && !error.fatal && error.context.head !== undefined) {
          queue.pushUsed(error.context.head, 0);
          continue;
        }
        context.markNeedsReset('broken ring');
        return;
      }
      if (chain === null) break;
      const data = new Uint8Array(chain.readableLength);
      let at = 0;
      for (const s of chain.readable) {
        context.memory.read(s.address, data.subarray(at, at + s.length));
        at += s.length;
      }
      let written = 0;
      for (const s of chain.writable) {
        const n = Math.min(s.length, data.length - written);
        if (n <= 0) break;
        context.memory.write(s.address, data.subarray(written, written + n));
        written += n;
      }
      queue.pushUsed(chain.head, written);
      this.completed++;
    }
    if (queue.needsNotification()) context.interrupt.signalQueue(index);
  }
}
