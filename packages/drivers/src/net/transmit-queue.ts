import { encodeNetHdr, type VirtioNetHdr, type VirtioTransport } from '@virtio-ts/device';
import { RingError, type DriverQueue, type Segment } from '@virtio-ts/ring';
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VIRTIO_NET_HDR_SIZE } from './constants.js';

/** How a transmitted packet is laid out in descriptors (§5.1.6.2: any layout, VERSION_1). */
export type TransmitLayout =
  /** Header and frame in one descriptor (Linux's default with ANY_LAYOUT). */
  | 'contiguous'
  /** The header in its own descriptor, then one descriptor per caller part (scatter-gather). */
  | 'scatter';

interface Token {
  readonly buffer: DmaBuffer;
  readonly pooled: boolean;
  readonly bytes: number;
}

/** Frames up to this size (header + 1514 + a VLAN tag, rounded) reuse pooled buffers. */
const POOL_BUFFER_SIZE = 2048;

/**
 * One transmitq (§5.1.6.2): copies a frame behind its virtio_net_hdr into a driver buffer, makes
 * it available (device-readable only), kicks, and recycles the buffer when the device returns it.
 * `send` returns false when the ring is full; `onWritable` fires once completions free room.
 */
export class TransmitQueue {
  readonly queue: DriverQueue<Token>;
  /** Frames made available and not yet returned by the device. */
  inFlight = 0;
  private readonly pool: DmaBuffer[] = [];
  private blocked = false;
  private closed = false;
  /** The device returned an invalid used element (e.g. a non-zero length: nothing here is writable). */
  broken = false;

  constructor(
    private readonly transport: VirtioTransport,
    readonly index: number,
    private readonly layout: TransmitLayout,
    /** Shared counters: completions. */
    private readonly counters: { txCompleted: number },
    private readonly onWritable: () => void,
    /** The ring refused a used element (fatal: the queue is broken until a reset). */
    private readonly onBroken: (error: RingError) => void,
    size?: number,
  ) {
    this.queue = transport.setupQueue<Token>(index, { ...(size !== undefined ? { size } : {}), onInterrupt: () => this.onInterrupt() });
  }

  /** Transmits one packet; false when the ring is full (nothing was queued). */
  send(parts: readonly Uint8Array[], hdr: VirtioNetHdr): boolean {
    if (this.closed) return false;
    if (this.broken) throw new DriverError('PROTOCOL', `transmitq ${this.index} is broken by the device; reset the driver`, { device: 'net', queue: this.index });
    let length = VIRTIO_NET_HDR_SIZE;
    for (const part of parts) length += part.length;
    const pooled = length <= POOL_BUFFER_SIZE;
    const buffer = pooled ? (this.pool.pop() ?? new DmaBuffer(this.transport.allocator, POOL_BUFFER_SIZE)) : new DmaBuffer(this.transport.allocator, length);
    const bytes = new Uint8Array(length);
    // §5.1.6.2.1: "The driver MUST set num_buffers to zero" (done by the caller's hdr) on transmit.
    encodeNetHdr(hdr, bytes);
    const segments: Segment[] = this.layout === 'scatter' ? [{ address: buffer.address, length: VIRTIO_NET_HDR_SIZE }] : [{ address: buffer.address, length }];
    let at = VIRTIO_NET_HDR_SIZE;
    for (const part of parts) {
      bytes.set(part, at);
      if (this.layout === 'scatter' && part.length > 0) segments.push({ address: buffer.address + at, length: part.length });
      at += part.length;
    }
    buffer.write(bytes);
    try {
      // §5.1.6.2: a transmitq buffer is device-readable only.
      this.queue.add(segments, [], { buffer, pooled, bytes: length - VIRTIO_NET_HDR_SIZE });
    } catch (error) {
      this.release(buffer, pooled);
      if (RingError.isInstance(error) && error.code === 'QUEUE_FULL') {
        this.blocked = true;
        return false;
      }
      throw error;
    }
    this.inFlight++;
    if (this.queue.kickPrepare()) this.transport.notify(this.index);
    return true;
  }

  /** Takes every buffer back (after a device reset) and frees it. */
  close(): void {
    this.closed = true;
    for (const token of this.queue.detachUnused()) token.buffer.free();
    for (const buffer of this.pool.splice(0)) buffer.free();
    this.inFlight = 0;
  }

  private onInterrupt(): void {
    if (this.closed || this.broken) return;
    let freed = 0;
    try {
      for (;;) {
        this.queue.disableCallback();
        for (let used = this.queue.getUsed(); used !== null; used = this.queue.getUsed()) {
          this.release(used.token.buffer, used.token.pooled);
          this.inFlight--;
          this.counters.txCompleted++;
          freed++;
        }
        if (this.queue.enableCallback()) break;
      }
    } catch (error) {
      // §2.7.8.1: the ring refused a used element (a length on a read-only buffer, an id not in flight).
      this.broken = true;
      this.onBroken(RingError.isInstance(error) ? error : new RingError('QUEUE_BROKEN', String(error), { queue: this.index }));
      return;
    }
    if (freed > 0 && this.blocked) {
      this.blocked = false;
      this.onWritable();
    }
  }

  private release(buffer: DmaBuffer, pooled: boolean): void {
    if (pooled && !this.closed) this.pool.push(buffer);
    else buffer.free();
  }
}
