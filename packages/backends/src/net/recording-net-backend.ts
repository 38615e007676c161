// A NetBackend for tests: records what the device transmits and lets the test deliver frames
// to the guest, with back-pressure both ways under the test's control. Pure, synchronous.
import type { VirtioNetHdr } from '@virtio-ts/device';
import { NO_NET_OFFLOADS, type NetBackend, type NetBackendStats, type NetOffloads, type NetPort, type NetReceiver } from './net-backend.js';

/** One frame the device sent: a copy of its bytes and of its offload header. */
export interface SentFrame {
  readonly bytes: Uint8Array;
  readonly hdr: VirtioNetHdr | undefined;
}

/** A queue pair's port of a {@link RecordingNetBackend}. */
export class RecordingNetPort implements NetPort {
  receiver: NetReceiver | undefined;
  /** Frames sent by the device, in order. */
  readonly sent: SentFrame[] = [];
  /** Frames the receiver refused (no buffers), delivered again on resumeReceive, in order. */
  readonly backlog: { frame: Uint8Array; hdr: VirtioNetHdr | undefined }[] = [];
  /** When true, send() refuses frames (back-pressure) until {@link unblock}. */
  blocked = false;
  attachCount = 0;
  resumeCount = 0;

  constructor(
    readonly index: number,
    private readonly stats: NetBackendStats,
  ) {}

  send(frame: readonly Uint8Array[], hdr?: VirtioNetHdr): boolean {
    if (this.blocked) return false;
    let length = 0;
    for (const part of frame) length += part.length;
    const bytes = new Uint8Array(length);
    let at = 0;
    for (const part of frame) {
      bytes.set(part, at);
      at += part.length;
    }
    this.sent.push({ bytes, hdr: hdr === undefined ? undefined : { ...hdr } });
    this.stats.txFrames++;
    this.stats.txBytes += length;
    return true;
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
    this.attachCount++;
  }

  detach(): void {
    this.receiver = undefined;
  }

  resumeReceive(): void {
    this.resumeCount++;
    this.pump();
  }

  /** Delivers a frame (queued behind the backlog); false when something still waits for buffers. */
  deliver(frame: Uint8Array, hdr?: VirtioNetHdr): boolean {
    if (this.receiver === undefined) {
      this.stats.rxDropped++;
      return false;
    }
    this.backlog.push({ frame: Uint8Array.from(frame), hdr });
    this.pump();
    return this.backlog.length === 0;
  }

  /** Delivers a batch and ends it with receiveBatchEnd (one interrupt). */
  deliverBatch(frames: readonly Uint8Array[]): void {
    for (const frame of frames) this.backlog.push({ frame: Uint8Array.from(frame), hdr: undefined });
    this.pump();
  }

  /** Lets send() take frames again and tells the device (writable). */
  unblock(): void {
    this.blocked = false;
    this.receiver?.writable();
  }

  private pump(): void {
    const receiver = this.receiver;
    if (receiver === undefined) return;
    let delivered = 0;
    while (this.backlog.length > 0) {
      const next = this.backlog[0]!;
      if (!receiver.receive(next.frame, next.hdr)) break;
      this.backlog.shift();
      delivered++;
      this.stats.rxFrames++;
      this.stats.rxBytes += next.frame.length;
    }
    if (delivered > 0) receiver.receiveBatchEnd?.();
  }
}

/** Options of a {@link RecordingNetBackend}. */
export interface RecordingNetBackendOptions {
  readonly maxQueuePairs?: number;
  readonly offloads?: NetOffloads;
  readonly rxOffloads?: NetOffloads;
  readonly mtu?: number;
}

/**
 * A NetBackend that records transmitted frames per port and delivers frames on request.
 *
 * @example
 * ```ts
 * const backend = new RecordingNetBackend();
 * const device = new NetDevice({ backend });
 * // ... activate, then:
 * backend.ports[0]!.deliver(frame);   // to the guest
 * backend.ports[0]!.sent;             // from the guest
 * ```
 */
export class RecordingNetBackend implements NetBackend {
  readonly description = 'recording';
  readonly maxQueuePairs: number;
  readonly offloads: NetOffloads;
  readonly rxOffloads: NetOffloads | undefined;
  readonly mtu: number;
  readonly stats: NetBackendStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txDropped: 0 };
  readonly ports: RecordingNetPort[];
  /** Every setGuestOffloads call, in order. */
  readonly guestOffloads: NetOffloads[] = [];
  closed = false;

  constructor(options: RecordingNetBackendOptions = {}) {
    this.maxQueuePairs = options.maxQueuePairs ?? 1;
    this.offloads = options.offloads ?? NO_NET_OFFLOADS;
    this.rxOffloads = options.rxOffloads;
    this.mtu = options.mtu ?? 1500;
    this.ports = Array.from({ length: this.maxQueuePairs }, (_, i) => new RecordingNetPort(i, this.stats));
  }

  port(index: number): RecordingNetPort {
    const port = this.ports[index];
    if (port === undefined) throw new RangeError(`no port ${index}`);
    return port;
  }

  setGuestOffloads(offloads: NetOffloads): void {
    this.guestOffloads.push({ ...offloads });
  }

  close(): Promise<void> {
    this.closed = true;
    for (const port of this.ports) port.detach();
    return Promise.resolve();
  }
}
