import { DriverError } from '../../errors.js';
import { formatIpv4 } from './addresses.js';

/** A datagram as a socket receives it. */
export interface UdpMessage {
  readonly data: Uint8Array;
  /** Sender's IPv4 address (dotted) and port. */
  readonly address: string;
  readonly port: number;
}

/** The part of the interface a socket sends through. */
export interface UdpSender {
  sendUdp(destination: string | number, sourcePort: number, destinationPort: number, data: Uint8Array): Promise<void>;
  releaseUdpPort(port: number): void;
}

/** Datagrams kept for an async iterator that is not reading (the oldest are dropped beyond it). */
export const UDP_SOCKET_BACKLOG = 1024;

/**
 * A bound UDP port on an {@link IpInterface}: receive with `onMessage` or `for await`, send with
 * `sendTo`. Datagrams that arrive with no listener and no iterator waiting are kept (bounded by
 * {@link UDP_SOCKET_BACKLOG}, then dropped and counted).
 */
export class UdpSocket implements AsyncIterable<UdpMessage, undefined> {
  /** Datagrams dropped because the backlog was full. */
  dropped = 0;
  private readonly listeners = new Set<(message: UdpMessage) => void>();
  private readonly backlog: UdpMessage[] = [];
  private readonly readers: ((result: IteratorResult<UdpMessage, undefined>) => void)[] = [];
  private closed = false;

  constructor(
    private readonly owner: UdpSender,
    readonly port: number,
  ) {}

  /** Sends `data` from this port to `address:port`; resolves when the frame is handed to the link. */
  sendTo(address: string | number, port: number, data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new DriverError('INVALID_ARGUMENT', 'the socket is closed', { protocol: 'udp', port: this.port }));
    return this.owner.sendUdp(address, this.port, port, data);
  }

  /** Receives datagrams as they arrive; returns an unsubscribe function. The backlog is delivered at once. */
  onMessage(listener: (message: UdpMessage) => void): () => void {
    this.listeners.add(listener);
    for (const message of this.backlog.splice(0)) listener(message);
    return () => this.listeners.delete(listener);
  }

  /** The next datagram (or done after `close`). */
  next(): Promise<IteratorResult<UdpMessage, undefined>> {
    const message = this.backlog.shift();
    if (message !== undefined) return Promise.resolve({ value: message, done: false });
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.readers.push(resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<UdpMessage, undefined> {
    return { next: () => this.next(), return: () => Promise.resolve(this.close()).then(() => ({ value: undefined, done: true })) };
  }

  /** Unbinds the port; pending iterators finish. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.releaseUdpPort(this.port);
    for (const reader of this.readers.splice(0)) reader({ value: undefined, done: true });
    this.listeners.clear();
  }

  /** @internal Called by the interface for each datagram to this port. */
  deliver(data: Uint8Array, source: number, sourcePort: number): void {
    const message: UdpMessage = { data: data.slice(), address: formatIpv4(source), port: sourcePort };
    const reader = this.readers.shift();
    if (reader !== undefined) {
      reader({ value: message, done: false });
      return;
    }
    if (this.listeners.size > 0) {
      for (const listener of this.listeners) listener(message);
      return;
    }
    if (this.backlog.length >= UDP_SOCKET_BACKLOG) {
      this.backlog.shift();
      this.dropped++;
    }
    this.backlog.push(message);
  }
}
