import { DriverError } from '../../errors.js';
import { deferMicrotask } from '../../web-apis.js';
import type { MacAddress } from './addresses.js';
import { ETHERNET_HEADER_SIZE } from './ethernet.js';

/**
 * What the stack needs from a network interface card: send an Ethernet frame, hear frames. The
 * {@link NetDriver} is one; {@link createMemoryLinkPair} gives two ends of a virtual cable for
 * tests and benches.
 */
export interface FrameLink {
  /** The link's own MAC address. */
  readonly mac: MacAddress;
  /** Largest payload after the 14-byte Ethernet header (the IP MTU). */
  readonly mtu: number;
  /**
   * Transmits one Ethernet frame without FCS. The link may keep `frame` until it is on the wire:
   * do not modify it afterwards. Returns false when the link is full: the frame was NOT taken;
   * retry after an `onWritable` event. Throws INVALID_ARGUMENT for a frame longer than
   * `mtu + 14` or shorter than 14 bytes.
   */
  send(frame: Uint8Array): boolean;
  /** Listens to received frames (the listener owns the array); returns an unsubscribe function. */
  onFrame(listener: (frame: Uint8Array) => void): () => void;
  /** Listens to "room again" events after `send` returned false; returns an unsubscribe function. */
  onWritable(listener: () => void): () => void;
}

/** Counters of one end of a memory link. */
export interface MemoryLinkStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** `send` calls refused because the peer's inbound queue was full. */
  txFull: number;
}

/** One end of {@link createMemoryLinkPair}. */
export interface MemoryLink extends FrameLink {
  readonly stats: MemoryLinkStats;
  /** Takes the link down: frames sent from either end are dropped until `setUp(true)`. */
  setUp(up: boolean): void;
}

/** Options of {@link createMemoryLinkPair}. */
export interface MemoryLinkOptions {
  /** IP MTU of both ends; default 1500, at most 65535 − 14 (a 64 KiB frame). */
  readonly mtu?: number;
  /** Frames an end's inbound queue holds before `send` returns false; default 256. */
  readonly capacity?: number;
  /** MAC addresses of the two ends; default 02:00:00:00:00:01 and …:02 (locally administered). */
  readonly macs?: readonly [MacAddress, MacAddress];
}

/** Largest frame an Ethernet frame length field can describe here: 64 KiB. */
export const MAX_LINK_FRAME = 65536;

/**
 * Two {@link FrameLink}s joined by a virtual cable. Frames are delivered asynchronously (in a
 * microtask, in order, a batch at a time), so a listener that answers at once does not recurse.
 * Each end's inbound queue is bounded: a full queue makes the peer's `send` return false and
 * emits `onWritable` on the peer once drained.
 *
 * @example
 * ```ts
 * const [a, b] = createMemoryLinkPair({ mtu: 1500 });
 * b.onFrame((frame) => console.log(frame.length));
 * a.send(encodeEthernet({ destination: b.mac, source: a.mac, etherType: 0x88b5, payload: new Uint8Array(46) }));
 * ```
 */
export function createMemoryLinkPair(options: MemoryLinkOptions = {}): [MemoryLink, MemoryLink] {
  const mtu = options.mtu ?? 1500;
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > MAX_LINK_FRAME - ETHERNET_HEADER_SIZE) {
    throw new DriverError('INVALID_ARGUMENT', `link MTU ${mtu} is outside 68..${MAX_LINK_FRAME - ETHERNET_HEADER_SIZE}`, { length: mtu });
  }
  const capacity = options.capacity ?? 256;
  const macs = options.macs ?? [new Uint8Array([2, 0, 0, 0, 0, 1]), new Uint8Array([2, 0, 0, 0, 0, 2])];
  const a = new MemoryLinkEnd(macs[0], mtu, capacity);
  const b = new MemoryLinkEnd(macs[1], mtu, capacity);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryLinkEnd implements MemoryLink {
  peer!: MemoryLinkEnd;
  readonly stats: MemoryLinkStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txFull: 0 };
  private readonly inbound: Uint8Array[] = [];
  private inboundHead = 0;
  private readonly frameListeners = new Set<(frame: Uint8Array) => void>();
  private readonly writableListeners = new Set<() => void>();
  private scheduled = false;
  private blocked = false;
  private up = true;

  constructor(
    readonly mac: MacAddress,
    readonly mtu: number,
    private readonly capacity: number,
  ) {}

  send(frame: Uint8Array): boolean {
    if (frame.length < ETHERNET_HEADER_SIZE || frame.length > this.mtu + ETHERNET_HEADER_SIZE) {
      throw new DriverError('INVALID_ARGUMENT', `frame of ${frame.length} bytes does not fit MTU ${this.mtu}`, { length: frame.length });
    }
    if (!this.up || !this.peer.up) return true; // a cable with no carrier: the frame is lost
    if (this.peer.queued >= this.capacity) {
      this.stats.txFull++;
      this.blocked = true;
      return false;
    }
    this.stats.txFrames++;
    this.stats.txBytes += frame.length;
    this.peer.enqueue(frame);
    return true;
  }

  onFrame(listener: (frame: Uint8Array) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  onWritable(listener: () => void): () => void {
    this.writableListeners.add(listener);
    return () => this.writableListeners.delete(listener);
  }

  setUp(up: boolean): void {
    this.up = up;
    this.peer.up = up;
  }

  private get queued(): number {
    return this.inbound.length - this.inboundHead;
  }

  private enqueue(frame: Uint8Array): void {
    this.inbound.push(frame);
    if (!this.scheduled) {
      this.scheduled = true;
      deferMicrotask(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    // Deliver what is queued now; frames sent by listeners meanwhile wait for the next microtask.
    const end = this.inbound.length;
    while (this.inboundHead < end) {
      const frame = this.inbound[this.inboundHead]!;
      this.inboundHead++;
      this.stats.rxFrames++;
      this.stats.rxBytes += frame.length;
      for (const listener of this.frameListeners) {
        try {
          listener(frame);
        } catch {
          // A listener's bug must not stop delivery to the others (a NIC does not crash either).
        }
      }
    }
    this.inbound.splice(0, this.inboundHead);
    this.inboundHead = 0;
    if (this.peer.blocked) {
      this.peer.blocked = false;
      for (const listener of this.peer.writableListeners) listener();
    }
  }
}
