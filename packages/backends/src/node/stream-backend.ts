/// <reference types="node" />
// QEMU's `-netdev stream` as a virtio-net back-end: a Unix or TCP stream socket carrying frames
// with a 4-byte big-endian length prefix, as server (`server=on`) or client (`server=off`). It
// joins our VMs to a QEMU VM's network or to user-mode networking such as passt.

import { lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, type VirtioNetHdr } from '@virtio-ts/device';
import { BackendError } from '../errors.js';
import { NO_NET_OFFLOADS, type NetBackend, type NetBackendStats, type NetOffloads, type NetPort, type NetReceiver } from '../net/net-backend.js';
import { STREAM_LENGTH_SIZE, STREAM_MAX_FRAME, StreamFrameDecoder } from './stream-framing.js';

/** Where the socket is: a Unix socket path (`addr.type=unix`) or a TCP host and port (`addr.type=inet`). */
export type StreamAddress = { readonly path: string } | { readonly host: string; readonly port: number };

/** Options of {@link StreamNetBackend}. */
export interface StreamNetBackendOptions {
  /** MTU reported to the device. Default 1500. */
  readonly mtu?: number;
  /** Client only: reconnect this long after the connection is lost or refused (QEMU's `reconnect=`). Default: no reconnection. */
  readonly reconnectMs?: number;
  /** Connection-level errors: PEER_PROTOCOL (a hostile length; the connection is closed) and HOST_IO (socket errors, `context.errno`). */
  readonly onError?: (error: BackendError) => void;
  /** A peer connected (true) or went away (false). */
  readonly onPeer?: (connected: boolean) => void;
}

/** Counters beyond {@link NetBackendStats}. */
export interface StreamNetStats extends NetBackendStats {
  /** Connections accepted (server) or established (client). */
  connections: number;
  /** Connections refused because a peer was already connected (server). */
  refusedPeers: number;
  /** Connections closed because the peer broke the framing. */
  protocolErrors: number;
}

/**
 * A `-netdev stream` back-end (one queue pair, no offloads: frames are complete both ways).
 *
 * Server: listens and serves one peer at a time; a second peer is refused while one is
 * connected, and a new one is accepted after it leaves (a QEMU VM that reboots reconnects).
 * Client: connects, and with `reconnectMs` keeps reconnecting.
 * Transmitting while no peer is connected drops the frame (counted in `txDropped`): a cable
 * unplugged. Back-pressure: once `socket.write` returns false, `send` refuses frames until the
 * socket drains, then calls `writable()`. A receiver without buffers pauses the socket.
 *
 * @example
 * ```ts
 * const net = await StreamNetBackend.listen({ path: '/run/vm0-net.sock' });
 * // qemu-system-x86_64 ... -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/run/vm0-net.sock
 * ```
 */
export class StreamNetBackend implements NetBackend, NetPort {
  readonly description: string;
  readonly maxQueuePairs = 1;
  readonly offloads: NetOffloads = NO_NET_OFFLOADS;
  readonly mtu: number;
  readonly stats: StreamNetStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txDropped: 0, connections: 0, refusedPeers: 0, protocolErrors: 0 };
  /** The last connection error (also given to `onError`). */
  lastError: BackendError | undefined;
  private server: Server | undefined;
  private socket: Socket | undefined;
  private readonly decoder = new StreamFrameDecoder(STREAM_MAX_FRAME);
  private receiver: NetReceiver | undefined;
  private blocked = false;
  private held: Uint8Array | undefined;
  private full = false;
  private closed = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private peerWaiters: (() => void)[] = [];

  private constructor(
    readonly address: StreamAddress,
    readonly isServer: boolean,
    private readonly options: StreamNetBackendOptions,
  ) {
    this.description = `stream:${'path' in address ? address.path : `${address.host}:${address.port}`}`;
    this.mtu = options.mtu ?? 1500;
    if (!Number.isInteger(this.mtu) || this.mtu < 68 || this.mtu > 65535) throw new BackendError('INVALID_OPTION', 'mtu must be 68..65535', { device: this.description, field: 'mtu' });
  }

  /**
   * Listens on `address` (`server=on`). A stale Unix socket file at the path is replaced; any
   * other file there is an error. Resolves once listening; for TCP port 0, {@link listeningPort}
   * tells the port chosen.
   */
  static async listen(address: StreamAddress, options: StreamNetBackendOptions = {}): Promise<StreamNetBackend> {
    const backend = new StreamNetBackend(address, true, options);
    if ('path' in address) removeStaleSocket(address.path);
    const server = createServer((socket) => backend.adopt(socket));
    backend.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(hostIo(error, `cannot listen on ${backend.description}`, backend.description)));
      if ('path' in address) server.listen(address.path, resolve);
      else server.listen(address.port, address.host, resolve);
    });
    server.on('error', (error) => backend.report(hostIo(error, 'listening socket failed', backend.description)));
    return backend;
  }

  /**
   * Connects to `address` (`server=off`). Resolves once connected; rejects with HOST_IO when
   * the first attempt fails and `reconnectMs` is not set (with it, keeps trying).
   */
  static async connect(address: StreamAddress, options: StreamNetBackendOptions = {}): Promise<StreamNetBackend> {
    const backend = new StreamNetBackend(address, false, options);
    await backend.dial(true);
    return backend;
  }

  /** True while a peer is connected. */
  get connected(): boolean {
    return this.socket !== undefined;
  }

  /** The TCP port a server listens on (useful with port 0), or undefined for Unix sockets. */
  get listeningPort(): number | undefined {
    const a = this.server?.address();
    return typeof a === 'object' && a !== null ? a.port : undefined;
  }

  /** Resolves when a peer is connected (at once if one is). */
  waitForPeer(): Promise<void> {
    if (this.socket !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.peerWaiters.push(resolve));
  }

  port(index: number): NetPort {
    if (index !== 0) throw new BackendError('INVALID_OPTION', `a stream back-end has one queue pair, not ${index + 1}`, { device: this.description, field: 'queuePair' });
    return this;
  }

  setGuestOffloads(_offloads: NetOffloads): void {
    // No offloads cross a stream socket: frames are always complete.
  }

  send(segments: readonly Uint8Array[], hdr?: VirtioNetHdr): boolean {
    const socket = this.socket;
    let length = 0;
    for (const s of segments) length += s.length;
    // offloads are NO_NET_OFFLOADS: a header asking for one cannot be honoured here.
    const asksOffload = hdr !== undefined && ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 || hdr.gsoType !== VIRTIO_NET_HDR_GSO_NONE);
    if (socket === undefined || this.closed || asksOffload || length === 0 || length > STREAM_MAX_FRAME) {
      this.stats.txDropped++;
      return true;
    }
    if (this.full) return false;
    const message = Buffer.allocUnsafe(STREAM_LENGTH_SIZE + length);
    message.writeUInt32BE(length, 0);
    let at = STREAM_LENGTH_SIZE;
    for (const s of segments) {
      message.set(s, at);
      at += s.length;
    }
    this.stats.txFrames++;
    this.stats.txBytes += length;
    if (!socket.write(message)) this.full = true;
    return true;
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
    this.blocked = false;
    this.deliver();
  }

  detach(): void {
    this.receiver = undefined;
    this.blocked = false;
    if (this.held !== undefined) {
      this.held = undefined;
      this.stats.rxDropped++;
    }
    this.deliver(); // drops what is buffered, resumes the socket
  }

  resumeReceive(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.deliver();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.receiver = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    const server = this.server;
    if (server !== undefined) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if ('path' in this.address) removeStaleSocket(this.address.path);
    }
    for (const w of this.peerWaiters.splice(0)) w();
  }

  private adopt(socket: Socket): void {
    if (this.closed || this.socket !== undefined) {
      // One peer at a time, like QEMU's stream server.
      if (!this.closed) this.stats.refusedPeers++;
      socket.destroy();
      return;
    }
    this.socket = socket;
    this.stats.connections++;
    this.decoder.reset();
    this.held = undefined;
    this.full = false;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      this.decoder.push(chunk);
      try {
        this.deliver();
      } catch (error) {
        // A receiver that throws is a bug in the device; report it and keep the connection.
        this.report(hostIo(error, 'receiver threw', this.description));
      }
    });
    socket.on('drain', () => {
      if (this.socket !== socket || !this.full) return;
      this.full = false;
      this.receiver?.writable();
    });
    socket.on('error', (error) => {
      if (this.socket === socket) this.report(hostIo(error, 'stream socket failed', this.description));
    });
    socket.on('close', () => this.lost(socket));
    this.options.onPeer?.(true);
    for (const w of this.peerWaiters.splice(0)) w();
  }

  private lost(socket: Socket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    this.decoder.reset();
    if (this.held !== undefined) {
      this.held = undefined;
      this.stats.rxDropped++;
    }
    this.blocked = false;
    const wasFull = this.full;
    this.full = false;
    if (!this.closed) {
      this.options.onPeer?.(false);
      // A sender waiting for writable() goes on (and drops while nobody is connected).
      if (wasFull) this.receiver?.writable();
      if (!this.isServer && this.options.reconnectMs !== undefined) this.scheduleReconnect();
    }
  }

  private dial(first: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = 'path' in this.address ? createConnection(this.address.path) : createConnection(this.address.port, this.address.host);
      const onError = (error: Error): void => {
        const e = hostIo(error, `cannot connect to ${this.description}`, this.description);
        if (first && this.options.reconnectMs === undefined) {
          reject(e);
          return;
        }
        this.report(e);
        if (first) resolve(); // resolved later connections arrive through waitForPeer()
        this.scheduleReconnect();
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        if (this.closed) {
          socket.destroy();
          resolve();
          return;
        }
        this.adopt(socket);
        resolve();
      });
    });
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== undefined) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed && this.socket === undefined) void this.dial(false);
    }, this.options.reconnectMs ?? 1000);
  }

  /** Hands buffered frames to the receiver until it has no buffers (then pauses the socket). */
  private deliver(): void {
    const socket = this.socket;
    let delivered = false;
    try {
      for (;;) {
        if (this.blocked) break;
        let frame = this.held;
        if (frame === undefined) {
          try {
            frame = this.decoder.next();
          } catch (error) {
            // A hostile length: this connection cannot be resynchronised. Close it, keep serving.
            this.stats.protocolErrors++;
            this.report(BackendError.isInstance(error) ? error : hostIo(error, 'stream framing failed', this.description));
            socket?.destroy();
            if (socket !== undefined) this.lost(socket);
            break;
          }
        }
        if (frame === undefined) break;
        this.held = undefined;
        const receiver = this.receiver;
        if (receiver === undefined || frame.length < 14) {
          this.stats.rxDropped++;
          continue;
        }
        if (!receiver.receive(frame)) {
          // NetReceiver.receive: false = keep the frame until resumeReceive.
          if (this.receiver === receiver) {
            this.blocked = true;
            this.held = frame;
          } else {
            this.stats.rxDropped++;
          }
          break;
        }
        this.stats.rxFrames++;
        this.stats.rxBytes += frame.length;
        delivered = true;
      }
    } finally {
      if (delivered) this.receiver?.receiveBatchEnd?.();
    }
    if (socket !== undefined && this.socket === socket) {
      if (this.blocked && !socket.isPaused()) socket.pause();
      else if (!this.blocked && socket.isPaused()) socket.resume();
    }
  }

  private report(error: BackendError): void {
    this.lastError = error;
    this.options.onError?.(error);
  }
}

function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}

function hostIo(error: unknown, message: string, device: string): BackendError {
  const errno = typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : undefined;
  return new BackendError('HOST_IO', `${message}${errno ? `: ${errno}` : ''}`, { device, errno }, { cause: error });
}
