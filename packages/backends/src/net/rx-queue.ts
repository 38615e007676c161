// A receiveq of the virtio-net device (VIRTIO 1.3 §5.1.6.3, §5.1.6.4): the back-end's frames,
// filtered, with a virtio_net_hdr in front, written into the guest's receive buffers — one chain
// per frame, or several with VIRTIO_NET_F_MRG_RXBUF. A chain is popped only to be used: when the
// ring runs short in the middle of a frame, the chains already popped are kept for the next try
// (never returned half-filled, never lost) and the back-end is told to wait.
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  type VirtioNetHdr,
  completeChecksum,
} from '@virtio-ts/device';
import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain } from '@virtio-ts/ring';
import type { QueueRunner } from '../queue-runner.js';
import type { NetFault } from './errors.js';
import { writeTo } from '../chain-io.js';
import type { NetMetrics } from './metrics.js';
import type { NetOffloads } from './net-backend.js';
import type { RxFilter } from './rx-filter.js';
import { checkTxHeader, ETH_HLEN, MAX_GSO_FRAME, VLAN_HLEN } from './tx-header.js';

/** What a receive queue shares with its device. */
export interface RxQueueContext {
  readonly memory: GuestMemory;
  readonly metrics: NetMetrics;
  /** 12 with VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF, else 10 (§5.1.6.1). */
  readonly hdrSize: number;
  /** VIRTIO_NET_F_MRG_RXBUF negotiated. */
  readonly mergeable: boolean;
  readonly filter: RxFilter;
  /** Largest frame without GSO (§5.1.4.1: with VIRTIO_NET_F_MTU, mtu plus the Ethernet header). */
  readonly maxFrame: number;
  /** The GUEST_* offloads the driver has enabled now (features, then GUEST_OFFLOADS_SET). */
  guestOffloads(): NetOffloads;
  linkUp(): boolean;
  /** Asks the back-end to deliver again after receive() returned false. */
  resume(): void;
}

const queueTask: (callback: () => void) => void = (globalThis as unknown as { queueMicrotask: (callback: () => void) => void }).queueMicrotask;

/**
 * One receiveq. Not exported from the package: {@link NetDevice} drives it.
 */
export class RxQueue {
  /** Chains popped for a frame that did not fit yet; used first, in order, by the next frame. */
  private readonly held: DescriptorChain[] = [];
  /** receive() returned false: resume the back-end at the next kick. */
  private starved = false;
  private notificationsOn = true;
  private signalPending = false;
  private flushQueued = false;
  private stopped = false;
  private readonly hdrBytes = new Uint8Array(12);
  private scratch: Uint8Array | undefined;
  private readonly flushTask = () => {
    this.flushQueued = false;
    this.flush();
  };

  constructor(
    private readonly runner: QueueRunner,
    private readonly context: RxQueueContext,
  ) {}

  get index(): number {
    return this.runner.index;
  }

  /** Chains popped and kept for a frame that did not fit yet (they are still the guest's buffers). */
  get heldBuffers(): number {
    return this.held.length;
  }

  /** True when the back-end was told to wait for buffers. */
  get waiting(): boolean {
    return this.starved;
  }

  /** The driver added buffers: a waiting back-end may deliver again. */
  notify(): void {
    this.context.metrics.queues[this.index]!.notifications++;
    if (this.stopped || !this.starved) return;
    this.starved = false;
    this.context.resume();
  }

  /** Device reset: held chains belong to the reset ring and are forgotten. */
  stop(): void {
    this.stopped = true;
    this.held.length = 0;
    this.runner.detach();
  }

  /**
   * Returns the held chains to the guest empty (used length 0) and signals it; the frame they
   * were popped for stays with the back-end, which delivers it again after the next kick.
   * Returns how many were released.
   */
  release(): number {
    const count = this.held.length;
    for (const chain of this.held.splice(0, count)) this.used(chain, 0);
    this.flush();
    return count;
  }

  /** Sends the pending used buffer notification now (NetReceiver.receiveBatchEnd). */
  flush(): void {
    if (!this.signalPending) return;
    this.signalPending = false;
    this.runner.signalIfNeeded();
  }

  /**
   * NetReceiver.receive for this queue. True when the frame was written or dropped (and
   * counted); false when the guest has no buffers for it (nothing was consumed).
   */
  receive(frame: Uint8Array, hdr?: VirtioNetHdr): boolean {
    if (this.stopped || this.runner.broken) return true;
    const { metrics, filter } = this.context;
    if (!this.context.linkUp()) return this.drop('RX_LINK_DOWN');
    const length = frame.length;
    if (length < ETH_HLEN) return this.drop('RX_RUNT');
    if (!filter.accepts(frame)) {
      metrics.filtered++;
      metrics.queues[this.index]!.drops++;
      return true;
    }
    // The header the guest gets: only offloads it enabled (§5.1.6.4.1: without GUEST_CSUM
    // flags MUST be zero; without GUEST_TSO4/6/UFO no such gso_type).
    const h = this.hdrBytes;
    h.fill(0);
    let data = frame;
    let gso = VIRTIO_NET_HDR_GSO_NONE;
    if (hdr !== undefined) {
      const offloads = this.context.guestOffloads();
      gso = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
      const needsCsum = (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
      // A back-end's header obeys the transmit rules against what the guest accepted
      // (§5.1.6.4.1 mirrors §5.1.6.2.1); a segmented frame also needs GUEST_CSUM.
      if (checkTxHeader(hdr, length, offloads) !== null || (gso !== VIRTIO_NET_HDR_GSO_NONE && !offloads.csum)) return this.drop('RX_BAD_OFFLOAD');
      if (gso !== VIRTIO_NET_HDR_GSO_NONE) {
        h[1] = hdr.gsoType;
        h[2] = hdr.hdrLen & 0xff;
        h[3] = hdr.hdrLen >>> 8;
        h[4] = hdr.gsoSize & 0xff;
        h[5] = hdr.gsoSize >>> 8;
      }
      if (needsCsum) {
        if (offloads.csum) {
          h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
          h[6] = hdr.csumStart & 0xff;
          h[7] = hdr.csumStart >>> 8;
          h[8] = hdr.csumOffset & 0xff;
          h[9] = hdr.csumOffset >>> 8;
        } else {
          // The guest cannot take a partial checksum: complete it here, on a copy.
          data = this.copy(frame);
          completeChecksum(data, hdr.csumStart, hdr.csumOffset);
          metrics.softwareChecksums++;
        }
      } else if ((hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0 && offloads.csum) {
        h[0] = VIRTIO_NET_HDR_F_DATA_VALID;
      }
    }
    if (gso === VIRTIO_NET_HDR_GSO_NONE ? length > this.frameLimit(frame) : length > MAX_GSO_FRAME) return this.drop('RX_OVERSIZE');
    return this.context.mergeable ? this.receiveMerged(data) : this.receiveSingle(data);
  }

  /** §5.1.6.3.1 without MRG_RXBUF: one chain holds the header and the whole frame. */
  private receiveSingle(frame: Uint8Array): boolean {
    const hdrSize = this.context.hdrSize;
    const total = hdrSize + frame.length;
    for (;;) {
      const chain = this.chainAt(0);
      if (chain === null) return this.starve();
      if (chain === undefined) return true; // the ring broke: DEVICE_NEEDS_RESET, nothing to deliver to
      if (chain.readableLength > 0 || chain.writableLength < hdrSize + ETH_HLEN) {
        this.discardHead('RX_BAD_BUFFER');
        continue;
      }
      if (chain.writableLength < total) {
        // The guest's buffers must fit the largest frame (§5.1.6.3.1): this one does not. The
        // frame is dropped, the buffer kept for the next (smaller) frame.
        return this.drop('RX_BUFFER_TOO_SMALL');
      }
      // §5.1.6.3.2: num_buffers is 1 without MRG_RXBUF (only in the 12-byte header).
      if (hdrSize === 12) this.hdrBytes[10] = 1;
      try {
        writeTo(this.context.memory, chain.writable, 0, hdrSize === 12 ? this.hdrBytes : this.hdrBytes.subarray(0, hdrSize));
        writeTo(this.context.memory, chain.writable, hdrSize, frame);
      } catch (error) {
        this.held.shift();
        this.runner.fail(`net rx queue ${this.index}: ${error instanceof Error ? error.message : String(error)}`);
        return true;
      }
      this.held.shift();
      this.used(chain, total);
      this.delivered(frame.length);
      return true;
    }
  }

  /**
   * §5.1.6.4.1 with MRG_RXBUF: the frame spreads over `num_buffers` chains; "the device MUST use
   * all buffers but the last (i.e. the first num_buffers - 1 buffers) completely up to the full
   * length of each buffer", and MUST use them together (one batch of used elements).
   */
  private receiveMerged(frame: Uint8Array): boolean {
    const hdrSize = this.context.hdrSize;
    const total = hdrSize + frame.length;
    let have = 0;
    let count = 0;
    while (have < total) {
      const chain = this.chainAt(count);
      if (chain === null) {
        // Every buffer the guest has is held and it is still not enough: this frame never fits.
        if (this.held.length >= this.runner.queue.size) return this.drop('RX_OVERSIZE');
        return this.starve();
      }
      if (chain === undefined) return true;
      // "each buffer MUST be at least size of struct virtio_net_hdr" (§5.1.6.3.1, driver side).
      if (chain.readableLength > 0 || chain.writableLength < hdrSize) {
        this.discardAt(count, 'RX_BAD_BUFFER');
        continue;
      }
      have += chain.writableLength;
      count++;
    }
    const h = this.hdrBytes;
    h[10] = count & 0xff;
    h[11] = count >>> 8;
    const memory = this.context.memory;
    let offset = 0; // bytes of the frame written
    try {
      for (let i = 0; i < count; i++) {
        const chain = this.held[i]!;
        let skip = 0;
        if (i === 0) {
          writeTo(memory, chain.writable, 0, h);
          skip = hdrSize;
        }
        const n = Math.min(chain.writableLength - skip, frame.length - offset);
        writeTo(memory, chain.writable, skip, frame.subarray(offset, offset + n));
        offset += n;
      }
    } catch (error) {
      this.held.splice(0, count);
      this.runner.fail(`net rx queue ${this.index}: ${error instanceof Error ? error.message : String(error)}`);
      return true;
    }
    let left = total;
    for (let i = 0; i < count; i++) {
      const chain = this.held[i]!;
      const n = Math.min(chain.writableLength, left);
      left -= n;
      this.used(chain, n);
    }
    this.held.splice(0, count);
    this.delivered(frame.length);
    return true;
  }

  /** The i-th chain for the current frame: a held one, or a new one popped and held. */
  private chainAt(i: number): DescriptorChain | null | undefined {
    if (i < this.held.length) return this.held[i];
    let chain = this.runner.pop();
    if (chain === null) {
      // Empty: ask for a kick, then look again (the re-check race of §2.7.10).
      if (!this.notificationsOn) {
        this.notificationsOn = true;
        let more: boolean;
        try {
          more = this.runner.queue.enableNotification();
        } catch (error) {
          this.runner.fail(`net rx queue ${this.index}: ${error instanceof Error ? error.message : String(error)}`);
          return undefined;
        }
        if (more) chain = this.runner.pop();
      }
      if (chain === null) return null;
    }
    if (chain === undefined) return undefined;
    if (this.notificationsOn) {
      // Buffers are there: no kicks needed until the ring runs dry again.
      this.notificationsOn = false;
      this.runner.queue.disableNotification();
    }
    this.held.push(chain);
    return chain;
  }

  private starve(): boolean {
    this.starved = true;
    this.context.metrics.rxStalls++;
    return false;
  }

  private drop(fault: NetFault): boolean {
    this.context.metrics.fault(fault, this.index);
    return true;
  }

  private discardHead(fault: NetFault): void {
    this.discardAt(0, fault);
  }

  /** A chain that can never hold a frame: returned at once with nothing written. */
  private discardAt(i: number, fault: NetFault): void {
    const [chain] = this.held.splice(i, 1);
    this.context.metrics.fault(fault);
    if (chain !== undefined) this.used(chain, 0);
  }

  private used(chain: DescriptorChain, length: number): void {
    if (!this.runner.pushUsed(chain.head, length)) return;
    this.signalPending = true;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueTask(this.flushTask);
    }
  }

  private delivered(bytes: number): void {
    const m = this.context.metrics.queues[this.index]!;
    m.frames++;
    m.bytes += bytes;
  }

  /** §5.1.4.1: MTU plus the Ethernet header, and a VLAN tag when the frame carries one. */
  private frameLimit(frame: Uint8Array): number {
    const tagged = frame[12] === 0x81 && frame[13] === 0x00;
    return this.context.maxFrame + (tagged ? VLAN_HLEN : 0);
  }

  private copy(frame: Uint8Array): Uint8Array {
    if (this.scratch === undefined || this.scratch.length < frame.length) this.scratch = new Uint8Array(Math.max(frame.length, 2048));
    const copy = this.scratch.subarray(0, frame.length);
    copy.set(frame);
    return copy;
  }
}
