/// <reference types="node" />
// A Linux TAP device as a virtio-net back-end: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with the 12-byte
// modern header (TUNSETVNETHDRSZ), IFF_MULTI_QUEUE with one fd per queue pair, TUNSETOFFLOAD
// following the guest's offloads (§5.1.6.2, §5.1.6.5.6.1).

import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_SIZE,
  decodeNetHdr,
  encodeNetHdr,
  plainNetHdr,
  type VirtioNetHdr,
} from '@virtio-ts/device';
import { HostError, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO, Tap, writeFd } from '@virtio-ts/host';
import { BackendError } from '../errors.js';
import { NO_NET_OFFLOADS, type NetBackend, type NetBackendStats, type NetOffloads, type NetPort, type NetReceiver } from '../net/net-backend.js';
import { MAX_IDS, ReadinessWaiter } from './readiness-waiter.js';

/** Room for a vnet header and a 64 KiB GSO super-frame (with Ethernet and VLAN headers). */
const BUFFER_SIZE = VIRTIO_NET_HDR_SIZE + 65535 + 14 + 4;
/** Frames read per readiness before yielding to the event loop (a flood cannot hold the thread). */
const READ_BUDGET = 256;

/** Options of {@link TapNetBackend.open}. */
export interface TapNetBackendOptions {
  /** Interface name (≤ 15 bytes): an existing TAP is attached, otherwise created; the kernel picks `tapN` when omitted. */
  readonly name?: string;
  /** Queue pairs; more than 1 opens the TAP with IFF_MULTI_QUEUE, one fd per pair. Default 1. */
  readonly queuePairs?: number;
  /** MTU reported to the device (the interface's own MTU is set with `ip link`). Default 1500. */
  readonly mtu?: number;
  /** Called with host I/O failures (a read or write that failed with something else than EAGAIN). */
  readonly onError?: (error: BackendError) => void;
}

/**
 * A TAP device as a {@link NetBackend}: frames carry the 12-byte virtio_net_hdr both ways, so
 * checksum and segmentation offloads pass between the guest and the host stack untouched.
 *
 * Readiness comes from a {@link ReadinessWaiter} (a thread blocked in epoll_wait, edge-triggered)
 * so the event loop neither polls nor blocks. A write that fails with EAGAIN makes `send` return
 * false; `writable()` follows when the fd is writable again.
 *
 * Needs CAP_NET_ADMIN. Creating a TAP opens it in the caller's network namespace; it can be moved
 * with `ip link set <name> netns <ns>` and the fd keeps working.
 */
export class TapNetBackend implements NetBackend {
  readonly description: string;
  readonly maxQueuePairs: number;
  readonly offloads: NetOffloads;
  readonly mtu: number;
  readonly stats: NetBackendStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txDropped: 0 };
  /** The interface name (the kernel's choice when none was given). */
  readonly name: string;
  /** The TUN_F_* flags last set with TUNSETOFFLOAD. */
  tunOffloadFlags = 0;
  /** The last host I/O error (also given to `onError`). */
  lastError: BackendError | undefined;
  private readonly taps: Tap[];
  private readonly ports: TapPort[];
  private readonly waiter: ReadinessWaiter;
  private readonly onError: ((error: BackendError) => void) | undefined;
  private guestOffloads: NetOffloads = NO_NET_OFFLOADS;
  private closed = false;
  private readonly loop: Promise<void>;

  private constructor(taps: Tap[], options: TapNetBackendOptions, ufo: boolean) {
    this.taps = taps;
    this.name = taps[0]!.name;
    this.description = `tap:${this.name}`;
    this.maxQueuePairs = taps.length;
    this.mtu = options.mtu ?? 1500;
    this.onError = options.onError;
    // With IFF_VNET_HDR the kernel takes partial checksums and GSO frames from us whatever
    // TUNSETOFFLOAD says (that ioctl only governs what it hands us).
    this.offloads = Object.freeze({ csum: true, tso4: true, tso6: true, ufo, ecn: true });
    this.waiter = new ReadinessWaiter();
    this.ports = taps.map((tap, index) => new TapPort(this, tap, index, taps.length > 1));
    taps.forEach((tap, index) => this.waiter.watch(tap.fd, index));
    this.loop = this.run();
  }

  /**
   * Opens (creating if needed) the TAP `options.name` with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
   * sets the vnet header size to 12 and turns receive offloads off until
   * {@link setGuestOffloads}. Throws BackendError HOST_IO (with the errno name) when the kernel refuses.
   */
  static open(options: TapNetBackendOptions = {}): TapNetBackend {
    const pairs = options.queuePairs ?? 1;
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > MAX_IDS) throw new BackendError('INVALID_OPTION', `queuePairs must be 1..${MAX_IDS}`, { device: 'tap', field: 'queuePairs' });
    const mtu = options.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new BackendError('INVALID_OPTION', 'mtu must be 68..65535', { device: 'tap', field: 'mtu' });
    const taps: Tap[] = [];
    try {
      let name = options.name;
      for (let i = 0; i < pairs; i++) {
        const tap = Tap.open({ name, vnetHeader: true, vnetHeaderSize: VIRTIO_NET_HDR_SIZE, multiQueue: pairs > 1 });
        taps.push(tap);
        name = tap.name;
      }
      // Probe UFO (removed from Linux 4.14 for locally generated traffic, still accepted from TAPs).
      let ufo = true;
      try {
        taps[0]!.setOffload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO);
      } catch {
        ufo = false;
      }
      taps[0]!.setOffload(0);
      // Multiqueue: the kernel steers flows to every attached queue, so a queue is attached only
      // while its port has a receiver (a guest using fewer pairs than we opened loses nothing).
      if (pairs > 1) for (const tap of taps) tap.setQueueEnabled(false);
      return new TapNetBackend(taps, options, ufo);
    } catch (error) {
      for (const tap of taps) tap.close();
      throw hostIo(error, `cannot open TAP ${options.name ?? '(new)'}`, options.name);
    }
  }

  /** The fds, one per queue pair (for tests and diagnostics). */
  get fds(): readonly number[] {
    return this.taps.map((t) => t.fd);
  }

  port(index: number): NetPort {
    const port = this.ports[index];
    if (port === undefined) throw new BackendError('INVALID_OPTION', `queue pair ${index} of ${this.maxQueuePairs}`, { device: this.description, field: 'queuePair' });
    return port;
  }

  /** TUNSETOFFLOAD: the kernel hands us partial checksums / GSO frames only when the guest takes them. */
  setGuestOffloads(offloads: NetOffloads): void {
    this.guestOffloads = Object.freeze({ ...offloads });
    let flags = 0;
    // The kernel refuses TSO/UFO without TUN_F_CSUM (a segment needs its checksum filled in).
    if (offloads.csum) {
      flags |= TUN_F_CSUM;
      if (offloads.tso4) flags |= TUN_F_TSO4;
      if (offloads.tso6) flags |= TUN_F_TSO6;
      if ((offloads.tso4 || offloads.tso6) && offloads.ecn) flags |= TUN_F_TSO_ECN;
      if (offloads.ufo && this.offloads.ufo) flags |= TUN_F_UFO;
    }
    if (this.closed) return;
    try {
      this.taps[0]!.setOffload(flags);
      this.tunOffloadFlags = flags;
    } catch (error) {
      throw hostIo(error, 'TUNSETOFFLOAD failed', this.name);
    }
  }

  /** @internal */
  acceptsDataValid(): boolean {
    return this.guestOffloads.csum;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.ports) p.stop();
    await this.waiter.close();
    await this.loop;
    for (const tap of this.taps) tap.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal */
  reportError(error: unknown, what: string): void {
    const e = hostIo(error, what, this.name);
    this.lastError = e;
    this.onError?.(e);
  }

  private async run(): Promise<void> {
    for (;;) {
      let ready;
      try {
        ready = await this.waiter.wait();
      } catch (error) {
        if (!this.closed) this.reportError(error, 'epoll_wait failed');
        return;
      }
      if (this.closed) return;
      for (const r of ready) {
        const port = this.ports[r.id];
        if (port === undefined) continue;
        try {
          if (r.writable) port.onWritable();
          if (r.readable) port.pump();
        } catch (error) {
          // A receiver that throws is a bug in the device; keep serving the other queues.
          this.reportError(error, `queue pair ${r.id}: receiver threw`);
        }
      }
    }
  }
}

/** One queue pair: one TAP fd. */
class TapPort implements NetPort {
  private receiver: NetReceiver | undefined;
  private blocked = false;
  private held: { frame: Uint8Array; hdr: VirtioNetHdr | undefined } | undefined;
  private wantWrite = false;
  private stopped = false;
  private pumpScheduled = false;
  private readonly readBuffer = new Uint8Array(BUFFER_SIZE);
  private readonly writeBuffer = new Uint8Array(BUFFER_SIZE);

  private queueEnabled: boolean;

  constructor(
    private readonly backend: TapNetBackend,
    private readonly tap: Tap,
    readonly index: number,
    private readonly multiQueue: boolean,
  ) {
    this.queueEnabled = !multiQueue;
  }

  send(segments: readonly Uint8Array[], hdr?: VirtioNetHdr): boolean {
    const stats = this.backend.stats;
    if (this.stopped) {
      stats.txDropped++;
      return true;
    }
    if (this.wantWrite) return false;
    // Gather header and frame into one write (a TAP takes exactly one frame per write).
    encodeNetHdr(hdr ?? PLAIN, this.writeBuffer, VIRTIO_NET_HDR_SIZE);
    let at = VIRTIO_NET_HDR_SIZE;
    for (const s of segments) {
      if (at + s.length > BUFFER_SIZE) {
        stats.txDropped++;
        return true;
      }
      this.writeBuffer.set(s, at);
      at += s.length;
    }
    try {
      writeFd(this.tap.fd, this.writeBuffer.subarray(0, at));
    } catch (error) {
      if (HostError.isInstance(error) && error.code === 'EAGAIN') {
        this.wantWrite = true;
        return false;
      }
      stats.txDropped++;
      this.backend.reportError(error, 'write to TAP failed');
      return true;
    }
    stats.txFrames++;
    stats.txBytes += at - VIRTIO_NET_HDR_SIZE;
    return true;
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
    this.blocked = false;
    this.setQueue(true);
    this.pump();
  }

  detach(): void {
    this.receiver = undefined;
    this.blocked = false;
    this.setQueue(false);
    if (this.held !== undefined) {
      this.held = undefined;
      this.backend.stats.rxDropped++;
    }
  }

  resumeReceive(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.pump();
  }

  /** TUNSETQUEUE on a multiqueue TAP: attached while a receiver is. */
  private setQueue(enabled: boolean): void {
    if (!this.multiQueue || this.queueEnabled === enabled || this.stopped) return;
    try {
      this.tap.setQueueEnabled(enabled);
      this.queueEnabled = enabled;
    } catch (error) {
      this.backend.reportError(error, `TUNSETQUEUE on queue pair ${this.index} failed`);
    }
  }

  /** @internal */
  stop(): void {
    this.stopped = true;
    this.receiver = undefined;
  }

  /** @internal */
  onWritable(): void {
    if (!this.wantWrite) return;
    this.wantWrite = false;
    this.receiver?.writable();
  }

  /**
   * Reads frames until EAGAIN (the fd is edge-triggered), the receiver has no buffers, or the
   * budget is spent (then it continues from a macrotask).
   */
  pump(): void {
    if (this.stopped || this.blocked) return;
    const stats = this.backend.stats;
    let delivered = false;
    if (this.held !== undefined && this.receiver !== undefined) {
      const { frame, hdr } = this.held;
      if (!this.receiver.receive(frame, hdr)) {
        this.blocked = true;
        return;
      }
      this.held = undefined;
      stats.rxFrames++;
      stats.rxBytes += frame.length;
      delivered = true;
    }
    let budget = READ_BUDGET;
    for (; budget > 0; budget--) {
      let n: number;
      try {
        n = this.tap.read(this.readBuffer);
      } catch (error) {
        if (!this.stopped) this.backend.reportError(error, 'read from TAP failed');
        break;
      }
      if (n === 0) break;
      if (n < VIRTIO_NET_HDR_SIZE) continue;
      const receiver = this.receiver;
      if (receiver === undefined) {
        stats.rxDropped++;
        continue;
      }
      const frame = this.readBuffer.subarray(VIRTIO_NET_HDR_SIZE, n);
      const hdr = this.headerOf();
      if (!receiver.receive(frame, hdr)) {
        // NetReceiver.receive: false = no buffers; keep this frame until resumeReceive.
        if (this.receiver === receiver) {
          this.blocked = true;
          this.held = { frame: frame.slice(), hdr };
        } else {
          stats.rxDropped++;
        }
        break;
      }
      stats.rxFrames++;
      stats.rxBytes += frame.length;
      delivered = true;
    }
    if (delivered) this.receiver?.receiveBatchEnd?.();
    if (budget === 0 && !this.blocked && !this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /** The header the kernel wrote, or undefined when it asks for nothing the guest must act on. */
  private headerOf(): VirtioNetHdr | undefined {
    const flags = this.readBuffer[0]!;
    const gsoType = this.readBuffer[1]!;
    if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) === 0 && gsoType === VIRTIO_NET_HDR_GSO_NONE && !((flags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0 && this.backend.acceptsDataValid())) return undefined;
    const hdr = decodeNetHdr(this.readBuffer, VIRTIO_NET_HDR_SIZE);
    hdr.numBuffers = 1;
    return hdr;
  }
}

const PLAIN = Object.freeze(plainNetHdr());

function hostIo(error: unknown, message: string, name: string | undefined): BackendError {
  if (BackendError.isInstance(error)) return error;
  const errno = HostError.isInstance(error) ? error.code : undefined;
  return new BackendError('HOST_IO', `${message}${errno ? `: ${errno}` : ''}`, { device: name === undefined ? 'tap' : `tap:${name}`, errno }, { cause: error });
}
