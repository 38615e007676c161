import { decodeNetHdr, type VirtioNetHdr, type VirtioTransport } from '@virtio-ts/device';
import { RingError, type DriverQueue } from '@virtio-ts/ring';
import { DmaBuffer } from '../dma-buffer.js';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_SIZE } from './constants.js';
import { internetChecksum } from './stack/checksum.js';
import { ETHERNET_HEADER_SIZE } from './stack/ethernet.js';

/**
 * Faults of a device's receive completions the driver refuses (the packet is dropped, the buffers
 * reposted, and the fault counted under its name in {@link NetDriverStats.rxFaults}).
 */
export type ReceiveFault =
  /** The used length exceeds the buffer's size (HOSTILE-INPUTS H9 seen from the driver). */
  | 'usedLengthBeyondBuffer'
  /** The first buffer holds less than a virtio_net_hdr. */
  | 'shortHeader'
  /** MRG_RXBUF: num_buffers is 0. */
  | 'numBuffersZero'
  /** MRG_RXBUF: num_buffers counts more buffers than the device holds. */
  | 'numBuffersBeyondPosted'
  /** Without MRG_RXBUF num_buffers must be 1 (§5.1.6.3.2). */
  | 'numBuffersNotOne'
  /** gso_type other than NONE, which this driver never negotiates (no GUEST_TSO/UFO/USO). */
  | 'unexpectedGso'
  /** NEEDS_CSUM without GUEST_CSUM, or csum_start/csum_offset outside the packet. */
  | 'badChecksumOffload'
  /** Fewer than 14 bytes of frame after the header. */
  | 'runt';

/** Options of {@link ReceiveQueue}. */
export interface ReceiveQueueOptions {
  readonly size?: number;
  /** Buffers kept posted. */
  readonly buffers: number;
  readonly bufferSize: number;
  readonly mergeable: boolean;
  readonly guestCsum: boolean;
  readonly onPacket: (frame: Uint8Array) => void;
  readonly onFault: (fault: ReceiveFault) => void;
  /** The ring refused a used element (fatal: the queue is broken until a reset). */
  readonly onBroken: (error: RingError) => void;
}

/** A packet spread over several merged buffers (§5.1.6.4), being put together. */
interface Assembly {
  readonly hdr: VirtioNetHdr;
  readonly parts: Uint8Array[];
  remaining: number;
}

/**
 * One receiveq (§5.1.6.3–5.1.6.4): keeps `buffers` device-writable buffers posted, reads each
 * completion, reassembles merged buffers by `num_buffers`, validates what the device wrote and
 * reposts the same buffers. Buffers are allocated once and returned on {@link close}.
 */
export class ReceiveQueue {
  readonly queue: DriverQueue<DmaBuffer>;
  /** Buffers the device holds (made available, not yet read back). */
  outstanding = 0;
  private readonly spare: DmaBuffer[] = [];
  private assembly: Assembly | undefined;
  /** Buffers of a refused merged packet still to be skipped. */
  private skip = 0;
  private draining = false;
  private again = false;
  private closed = false;
  /** The device returned an invalid used element; nothing more is posted or read. */
  broken = false;

  constructor(
    private readonly transport: VirtioTransport,
    readonly index: number,
    private readonly options: ReceiveQueueOptions,
  ) {
    this.queue = transport.setupQueue<DmaBuffer>(index, { ...(options.size !== undefined ? { size: options.size } : {}), onInterrupt: () => this.onInterrupt() });
    const count = Math.min(options.buffers, this.queue.size);
    for (let i = 0; i < count; i++) this.spare.push(new DmaBuffer(transport.allocator, options.bufferSize));
  }

  /** Posts every spare buffer (call after DRIVER_OK: §3.1.1 forbids notifying before it). */
  fill(): void {
    if (this.closed || this.broken) return;
    let added = 0;
    // §5.1.6.3.1: "The driver MUST NOT put a device-readable buffer in a receiveq" — writable segments only.
    while (this.spare.length > 0 && this.queue.freeCount > 0) {
      const buffer = this.spare.pop()!;
      this.queue.add([], buffer.segments(), buffer);
      this.outstanding++;
      added++;
    }
    if (added > 0 && this.queue.kickPrepare()) this.transport.notify(this.index);
  }

  /** Takes every buffer back (after a device reset) and frees it. */
  close(): void {
    this.closed = true;
    for (const buffer of this.queue.detachUnused()) buffer.free();
    for (const buffer of this.spare.splice(0)) buffer.free();
    this.outstanding = 0;
    this.assembly = undefined;
  }

  private onInterrupt(): void {
    if (this.closed || this.broken) return;
    if (this.draining) {
      this.again = true; // a synchronous device completed more while we were refilling
      return;
    }
    this.draining = true;
    try {
      do {
        this.again = false;
        for (;;) {
          this.queue.disableCallback();
          for (let used = this.getUsed(); used !== null; used = this.getUsed()) this.complete(used.token, used.length);
          if (this.broken || this.queue.enableCallback()) break; // §2.7.10: re-check after re-enabling
        }
        this.fill();
      } while (this.again && !this.closed && !this.broken);
    } finally {
      this.draining = false;
    }
  }

  /**
   * The ring validates each used element (§2.7.8.1: id in flight, len within the writable
   * length) and breaks the queue on a bad one; that is reported once, never thrown.
   */
  private getUsed(): { token: DmaBuffer; length: number } | null {
    if (this.broken) return null;
    try {
      return this.queue.getUsed();
    } catch (error) {
      this.broken = true;
      if (RingError.isInstance(error) && error.code === 'INVALID_USED_ELEMENT' && error.context.length !== undefined) this.options.onFault('usedLengthBeyondBuffer');
      this.options.onBroken(RingError.isInstance(error) ? error : new RingError('QUEUE_BROKEN', String(error), { queue: this.index }));
      return null;
    }
  }

  private complete(buffer: DmaBuffer, length: number): void {
    this.outstanding--;
    this.spare.push(buffer);
    if (length > buffer.length) {
      this.refuse('usedLengthBeyondBuffer');
      return;
    }
    if (this.skip > 0) {
      this.skip--;
      return;
    }
    const assembly = this.assembly;
    if (assembly !== undefined) {
      assembly.parts.push(buffer.read(0, length));
      if (--assembly.remaining === 0) {
        this.assembly = undefined;
        this.deliver(assembly.hdr, concat(assembly.parts));
      }
      return;
    }
    if (length < VIRTIO_NET_HDR_SIZE) {
      this.options.onFault('shortHeader');
      return;
    }
    const bytes = buffer.read(0, length);
    const hdr = decodeNetHdr(bytes);
    const frame = bytes.subarray(VIRTIO_NET_HDR_SIZE);
    if (this.options.mergeable) {
      if (hdr.numBuffers === 0) {
        this.options.onFault('numBuffersZero');
        return;
      }
      // The other buffers of this packet are among those the device still holds or has returned.
      if (hdr.numBuffers - 1 > this.outstanding) {
        this.options.onFault('numBuffersBeyondPosted');
        return;
      }
      if (hdr.numBuffers > 1) {
        this.assembly = { hdr, parts: [frame], remaining: hdr.numBuffers - 1 };
        return;
      }
    } else if (hdr.numBuffers !== 1) {
      // §5.1.6.3.2: "The device MUST use only a single descriptor if VIRTIO_NET_F_MRG_RXBUF was not negotiated."
      this.options.onFault('numBuffersNotOne');
      return;
    }
    this.deliver(hdr, frame);
  }

  /** A bad buffer inside a merged packet drops the rest of that packet too. */
  private refuse(fault: ReceiveFault): void {
    if (this.assembly !== undefined) {
      this.skip = this.assembly.remaining - 1;
      this.assembly = undefined;
    } else if (this.skip > 0) {
      this.skip--;
    }
    this.options.onFault(fault);
  }

  private deliver(hdr: VirtioNetHdr, frame: Uint8Array): void {
    // §5.1.6.4.2: "The driver MUST ignore flag bits that it does not recognize"; gso_type is not a flag.
    if (hdr.gsoType !== VIRTIO_NET_HDR_GSO_NONE) {
      this.options.onFault('unexpectedGso');
      return;
    }
    if (frame.length < ETHERNET_HEADER_SIZE) {
      this.options.onFault('runt');
      return;
    }
    if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
      // §5.1.6.4 (with GUEST_CSUM): the packet is only partially checksummed; the field at
      // csum_start + csum_offset holds the pseudo-header sum, "so that replacing it by the ones'
      // complement checksum of the [transport] header and body will give the correct result"
      // (§5.1.6.2). Finish it here, as a NIC without offload would.
      const at = hdr.csumStart + hdr.csumOffset;
      if (!this.options.guestCsum || hdr.csumStart >= frame.length || at + 2 > frame.length) {
        this.options.onFault('badChecksumOffload');
        return;
      }
      // 0 and 0xffff are the same in ones' complement; 0xffff also stays valid for UDP (RFC 768).
      const sum = internetChecksum(frame.subarray(hdr.csumStart)) || 0xffff;
      frame[at] = sum >>> 8;
      frame[at + 1] = sum & 0xff;
    }
    this.options.onPacket(frame);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
