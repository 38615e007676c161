// A transmitq of the virtio-net device (VIRTIO 1.3 §5.1.6.2): pop a chain, check its
// virtio_net_hdr, hand the frame to the back-end as zero-copy views of guest memory, return the
// chain with used length 0. Back-pressure from the back-end keeps the chain and resumes on
// `writable()`; every popped chain ends in a used element.
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  plainNetHdr,
  type VirtioNetHdr,
  completeChecksum,
} from '@virtio-ts/device';
import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain } from '@virtio-ts/ring';
import type { QueueRunner } from '../queue-runner.js';
import { readFrom, viewsFrom } from '../chain-io.js';
import type { NetFault } from './errors.js';
import type { NetMetrics } from './metrics.js';
import type { NetPort } from './net-backend.js';
import { checkTxHeader, ETH_HLEN, MAX_GSO_FRAME, type TxOffloads } from './tx-header.js';

/** What a transmit queue shares with its device. */
export interface TxQueueContext {
  readonly memory: GuestMemory;
  readonly metrics: NetMetrics;
  /** 12 with VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF, else 10 (§5.1.6.1). */
  readonly hdrSize: number;
  /** HOST_* offloads negotiated (each offered only when the back-end takes them). */
  readonly offloads: TxOffloads;
  /** Largest frame without GSO: MTU + Ethernet header + a VLAN tag. */
  readonly maxFrame: number;
  /** False while the link is down: frames are dropped (and their chains returned). */
  linkUp(): boolean;
}

/**
 * One transmitq. Not exported from the package: {@link NetDevice} drives it.
 */
export class TxQueue {
  /** A chain the back-end refused (send() === false), retried on writable(). */
  private pending: DescriptorChain | null = null;
  private stopped = false;
  private readonly hdr: VirtioNetHdr = plainNetHdr();
  private readonly hdrBytes = new Uint8Array(12);
  private readonly views: Uint8Array[] = [];
  private scratch: Uint8Array | undefined;
  private processing = false;
  private again = false;

  constructor(
    private readonly runner: QueueRunner,
    private readonly port: NetPort,
    private readonly context: TxQueueContext,
  ) {}

  get index(): number {
    return this.runner.index;
  }

  /** True while a frame waits for the back-end. */
  get blocked(): boolean {
    return this.pending !== null;
  }

  notify(): void {
    this.context.metrics.queues[this.index]!.notifications++;
    this.process();
  }

  /** The back-end can take frames again. */
  writable(): void {
    // From inside send() (a refused frame not yet marked pending): run again after this pass.
    if (this.processing) this.again = true;
    else if (this.pending !== null) this.process();
  }

  /** Device reset: nothing more is sent or returned. */
  stop(): void {
    this.stopped = true;
    this.pending = null;
    this.runner.detach();
  }

  /** Drains the ring (also the resume target of the runner's yield, H17). */
  process(): void {
    if (this.stopped) return;
    // A back-end may call writable() from inside send(): finish this pass, then run again.
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    try {
      // Bounded: a back-end that keeps refusing and waking us at once cannot spin the thread.
      for (let round = 0; round < 64; round++) {
        this.again = false;
        this.pass();
        if (!this.again || this.stopped) break;
      }
    } finally {
      this.processing = false;
    }
  }

  private pass(): void {
    let completed = 0;
    const pending = this.pending;
    if (pending !== null) {
      if (!this.transmit(pending)) return;
      this.pending = null;
      completed++;
    }
    this.runner.drain((chain) => {
      if (this.transmit(chain)) {
        completed++;
        return true;
      }
      this.pending = chain;
      return false;
    });
    // One notification for the whole batch (§2.7.10 suppression decides whether it is sent).
    if (completed > 0) this.runner.signalIfNeeded();
  }

  /** Sends one chain's frame; false when the back-end refused it (the chain is kept). */
  private transmit(chain: DescriptorChain): boolean {
    const { metrics, hdrSize, memory } = this.context;
    const q = this.index;
    if (!this.context.linkUp()) return this.drop(chain, 'TX_NOT_RUNNING');
    if (chain.readableLength < hdrSize) return this.drop(chain, 'TX_SHORT_HEADER');
    const frameLength = chain.readableLength - hdrSize;
    try {
      readFrom(memory, chain.readable, 0, hdrSize === 12 ? this.hdrBytes : this.hdrBytes.subarray(0, hdrSize));
      this.decodeHeader();
      const hdr = this.hdr;
      const gso = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
      if (frameLength < ETH_HLEN) return this.drop(chain, 'TX_RUNT');
      if (frameLength > (gso === VIRTIO_NET_HDR_GSO_NONE ? this.context.maxFrame : MAX_GSO_FRAME)) return this.drop(chain, 'TX_OVERSIZE');
      const bad = checkTxHeader(hdr, frameLength, this.context.offloads);
      if (bad !== null) return this.drop(chain, bad);
      const needsCsum = (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
      let frame: readonly Uint8Array[];
      let offload: VirtioNetHdr | undefined;
      if (needsCsum && !this.context.offloads.csum) {
        // CSUM was not negotiated (the driver MUST NOT ask): finish the checksum here on a copy;
        // transmit buffers are device-readable only.
        const copy = this.copyFrame(chain, frameLength);
        completeChecksum(copy, hdr.csumStart, hdr.csumOffset);
        metrics.softwareChecksums++;
        this.views.length = 0;
        this.views.push(copy);
        frame = this.views;
      } else {
        frame = viewsFrom(memory, chain.readable, hdrSize, this.views);
        if (needsCsum || gso !== VIRTIO_NET_HDR_GSO_NONE) {
          // Only what the back-end declared it takes reaches it (offered features follow `offloads`).
          hdr.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
          hdr.numBuffers = 0;
          offload = hdr;
        }
      }
      if (!this.port.send(frame, offload)) {
        metrics.txStalls++;
        return false;
      }
      const m = metrics.queues[q]!;
      m.frames++;
      m.bytes += frameLength;
    } catch (error) {
      // Segments were validated by the ring; a failure here is a host bug or a vanished mapping.
      this.runner.fail(`net tx queue ${q}: ${error instanceof Error ? error.message : String(error)}`);
      return true;
    }
    this.runner.pushUsed(chain.head, 0);
    return true;
  }

  /** Drops a frame: counted, and its chain returned with nothing written. */
  private drop(chain: DescriptorChain, fault: NetFault): boolean {
    this.context.metrics.fault(fault, this.index);
    this.runner.pushUsed(chain.head, 0);
    return true;
  }

  private decodeHeader(): void {
    const b = this.hdrBytes;
    const h = this.hdr;
    h.flags = b[0]!;
    h.gsoType = b[1]!;
    h.hdrLen = b[2]! | (b[3]! << 8);
    h.gsoSize = b[4]! | (b[5]! << 8);
    h.csumStart = b[6]! | (b[7]! << 8);
    h.csumOffset = b[8]! | (b[9]! << 8);
    h.numBuffers = this.context.hdrSize === 12 ? b[10]! | (b[11]! << 8) : 0;
  }

  private copyFrame(chain: DescriptorChain, frameLength: number): Uint8Array {
    if (this.scratch === undefined || this.scratch.length < frameLength) this.scratch = new Uint8Array(Math.max(frameLength, 2048));
    const copy = this.scratch.subarray(0, frameLength);
    readFrom(this.context.memory, chain.readable, this.context.hdrSize, copy);
    return copy;
  }
}
