import { ConsoleDevice, type ConsoleBackend, type RingFeatureOptions } from '@virtio-ts/backends';
import { PtyConsoleBackend, SocketConsoleBackend, stdioConsole, type ClosableConsoleBackend } from '../console/host-console.js';

/** Where a console's host side goes: `echo` (default), `stdio`, `pty` or `socket:PATH`. */
export type ConsoleBackendSpec = string;

const hostSides = new WeakMap<ConsoleDevice, ClosableConsoleBackend>();

/** The host side `spec` names (echo when omitted). */
export function createConsoleBackend(spec: ConsoleBackendSpec | undefined): ConsoleBackend & { readonly describe?: string } {
  if (spec === undefined || spec === 'echo') return new EchoConsoleBackend();
  if (spec === 'stdio') return stdioConsole();
  if (spec === 'pty') return new PtyConsoleBackend();
  if (spec.startsWith('socket:')) return SocketConsoleBackend.open(spec.slice('socket:'.length));
  throw new Error(`unknown console backend ${spec}`);
}

/** Closes the host side of a console made by {@link createConsoleDevice} (sockets, ptys). */
export function closeConsoleHost(device: unknown): void {
  if (device instanceof ConsoleDevice) hostSides.get(device)?.close();
}

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

/** A virtio-console with one port (the console, port 0) on the host side `spec` names (default: echo). */
export function createConsoleDevice(ring: RingFeatureOptions, queueSize: number, spec?: ConsoleBackendSpec): ConsoleDevice {
  const backend = createConsoleBackend(spec);
  const device = new ConsoleDevice({ ...ring, queueSize, ports: [{ backend, console: true, hostOpen: true }] });
  if ('close' in backend && typeof backend.close === 'function') hostSides.set(device, backend as ClosableConsoleBackend);
  return device;
}
