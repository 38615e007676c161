import { ConsoleDevice, type ConsoleBackend, type RingFeatureOptions } from '@virtio-ts/backends';

/**
 * The console's host side in the model guest: an echo. Every byte the guest transmits comes back
 * on the receive queue, so the guest's `console` workload can check the round trip byte for byte.
 */
export class EchoConsoleBackend implements ConsoleBackend {
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();
  /** Bytes echoed. */
  echoed = 0;

  write(bytes: Uint8Array): void {
    const copy = bytes.slice();
    this.echoed += copy.length;
    for (const listener of this.listeners) listener(copy);
  }

  onData(callback: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }
}

/** A virtio-console with one port (the console, port 0) on an echo backend. */
export function createConsoleDevice(ring: RingFeatureOptions, queueSize: number): ConsoleDevice {
  return new ConsoleDevice({ ...ring, queueSize, ports: [{ backend: new EchoConsoleBackend(), console: true, hostOpen: true }] });
}
