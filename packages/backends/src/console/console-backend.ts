import { utf8Decode, utf8Encode } from '../web-apis.js';

/**
 * The host side of one console port: an abstract duplex byte stream. Host adapters (stdio, a
 * Unix socket, a pty) live in the VMM (apps/vmm), not here: this layer stays pure.
 */
export interface ConsoleBackend {
  /**
   * Bytes the guest wrote to the port. A returned promise is back-pressure: the device returns
   * the guest's buffer only when it settles.
   */
  write(bytes: Uint8Array): void | Promise<void>;
  /** Registers the receiver of host input; returns a function that unregisters it. */
  onData(callback: (bytes: Uint8Array) => void): () => void;
}

/**
 * An in-memory {@link ConsoleBackend}: collects what the guest writes and lets the host push
 * input with {@link MemoryConsoleBackend.input}. Useful for tests and scripted sessions.
 */
export class MemoryConsoleBackend implements ConsoleBackend {
  readonly written: Uint8Array[] = [];
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();

  write(bytes: Uint8Array): void {
    this.written.push(bytes.slice());
  }

  onData(callback: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /** Sends host input to the guest. */
  input(bytes: Uint8Array | string): void {
    const data = typeof bytes === 'string' ? utf8Encode(bytes) : bytes;
    for (const listener of this.listeners) listener(data);
  }

  /** Everything written so far, concatenated. */
  output(): Uint8Array {
    const total = this.written.reduce((n, b) => n + b.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const b of this.written) {
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  /** Everything written so far, as UTF-8 text. */
  text(): string {
    return utf8Decode(this.output());
  }
}
