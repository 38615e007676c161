// An in-process Ethernet switch (IEEE 802.1D transparent bridging: learning, ageing, flooding)
// that connects virtio-net devices of model guests with each other and with host back-ends.
// Pure: no I/O, no timers; time comes from an injectable clock.

import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  type VirtioNetHdr,
  completeChecksum,
} from '@virtio-ts/device';
import { BackendError } from '../errors.js';
import { monotonicNow } from '../web-apis.js';
import { NO_NET_OFFLOADS, type NetBackend, type NetBackendStats, type NetOffloads, type NetPort, type NetReceiver } from './net-backend.js';

/** Ethernet header: destination MAC, source MAC, EtherType. */
const ETH_HLEN = 14;
/** An 802.1Q tag on top of the MTU. */
const VLAN_HLEN = 4;
/** A GSO super-frame is at most 64 KiB of IP datagram plus its Ethernet (and VLAN) header. */
const MAX_GSO_FRAME = 65535 + ETH_HLEN + VLAN_HLEN;

/** Options of {@link L2Switch}. */
export interface L2SwitchOptions {
  /** For descriptions (`switch:<name>/<port>`). Default `lan0`. */
  readonly name?: string;
  /**
   * Learned addresses are forgotten after this long without a frame from them. Default 300 s,
   * the 802.1D default and Linux bridge's `ageing_time`.
   */
  readonly ageingMs?: number;
  /**
   * Frames a port keeps while its receiver has no buffers; further frames are dropped and counted
   * in that port's `rxDropped`. Default 256 (a receive queue's worth).
   */
  readonly maxQueuedFrames?: number;
  /**
   * Size of the forwarding database. When full, the oldest-learned address is evicted so that a
   * guest sending from random source addresses cannot make the table grow. Default 4096.
   */
  readonly maxAddresses?: number;
  /** MTU every port reports (68..65535). Default 1500. */
  readonly mtu?: number;
  /**
   * Offloads every port declares. Default {@link NO_NET_OFFLOADS}: frames are complete and
   * checksummed. With offloads, a virtio_net_hdr travels with the frame to each destination whose
   * guest accepted that offload (`setGuestOffloads`); for a destination that did not, a partial
   * checksum is completed in software, and a GSO super-frame is dropped (counted in
   * `stats.offloadDrops`): give offloads only when every guest on the switch accepts them.
   */
  readonly offloads?: NetOffloads;
  /** Milliseconds, monotonic (injectable for tests). Default `performance.now()`. */
  readonly clock?: { now(): number };
}

/** Switch-wide counters (per-port counters are each port's {@link NetBackend.stats}). */
export interface L2SwitchStats {
  /** Frames sent to exactly one port because its destination was learned. */
  forwarded: number;
  /** Frames sent to every other port (broadcast, multicast, unknown or aged unicast). */
  flooded: number;
  /** Frames whose learned destination is the port they came from (dropped, never hairpinned). */
  filtered: number;
  /** Addresses learned or moved to another port. */
  learned: number;
  /** Addresses forgotten because they aged out. */
  aged: number;
  /** Addresses evicted because the table was full. */
  evicted: number;
  /** Frames with an offload header a destination could not take (GSO without the guest offload). */
  offloadDrops: number;
}

interface FdbEntry {
  port: SwitchPort;
  seen: number;
}

interface Queued {
  frame: Uint8Array;
  hdr: VirtioNetHdr | undefined;
}

/**
 * A learning Ethernet switch with any number of ports, each a one-queue-pair {@link NetBackend}
 * to hand to a virtio-net device.
 *
 * - Learning: the source address of every frame maps to the port it came from; entries age out
 *   after `ageingMs` and are forgotten when their port disconnects.
 * - Forwarding: a unicast frame to a learned address goes to that port only; broadcast, multicast
 *   and unknown unicast are flooded to every other port. A frame never goes back to its source
 *   port (no hairpin).
 * - Back-pressure: a receiver that returns false makes its port keep up to `maxQueuedFrames`
 *   frames until `resumeReceive`; past that they are dropped and counted. The sender is never
 *   blocked by a slow port (a switch drops, it does not stall the LAN), so `send` always takes
 *   the frame.
 * - Delivery is synchronous and zero-copy when the receiver is ready (the frame view passed to
 *   `receive` is the sender's own bytes for a single-segment frame); `receiveBatchEnd` is called
 *   once per port at the end of the current task (a microtask), so a burst costs one interrupt.
 *
 * @example
 * ```ts
 * const lan = new L2Switch({ name: 'lan0' });
 * const a = lan.connect('a'), b = lan.connect('b');
 * b.port(0).attach({ receive: (frame) => { console.log(frame.length); return true; }, writable() {} });
 * a.port(0).send([frame]); // flooded to b (destination not learned yet)
 * ```
 */
export class L2Switch {
  readonly name: string;
  readonly ageingMs: number;
  readonly maxQueuedFrames: number;
  readonly maxAddresses: number;
  readonly mtu: number;
  readonly offloads: NetOffloads;
  readonly stats: L2SwitchStats = { forwarded: 0, flooded: 0, filtered: 0, learned: 0, aged: 0, evicted: 0, offloadDrops: 0 };
  /** @internal */
  readonly clock: { now(): number };
  /** @internal */
  readonly maxFrame: number;
  private readonly ports: SwitchPort[] = [];
  private readonly fdb = new Map<number, FdbEntry>();
  private nextPortId = 0;
  private scratch: Uint8Array | undefined;
  private delivering = false;
  private readonly nested: { from: SwitchPort; frame: Uint8Array; hdr: VirtioNetHdr | undefined }[] = [];
  private readonly batchEnds = new Set<SwitchPort>();
  private batchScheduled = false;

  constructor(options: L2SwitchOptions = {}) {
    this.name = options.name ?? 'lan0';
    this.ageingMs = checkInt(options.ageingMs ?? 300_000, 0, 2 ** 31, 'ageingMs');
    this.maxQueuedFrames = checkInt(options.maxQueuedFrames ?? 256, 0, 65536, 'maxQueuedFrames');
    this.maxAddresses = checkInt(options.maxAddresses ?? 4096, 1, 1 << 20, 'maxAddresses');
    this.mtu = checkInt(options.mtu ?? 1500, 68, 65535, 'mtu');
    this.offloads = Object.freeze({ ...(options.offloads ?? NO_NET_OFFLOADS) });
    this.clock = options.clock ?? { now: monotonicNow };
    const anyGso = this.offloads.tso4 || this.offloads.tso6 || this.offloads.ufo;
    this.maxFrame = anyGso ? MAX_GSO_FRAME : this.mtu + ETH_HLEN + VLAN_HLEN;
  }

  /** Plugs in a new port and returns it as a one-queue-pair back-end. */
  connect(name?: string): NetBackend & { readonly id: number; readonly name: string } {
    return this.newPort(name);
  }

  private newPort(name: string | undefined): SwitchPort {
    const id = this.nextPortId++;
    const port = new SwitchPort(this, id, name ?? String(id));
    this.ports.push(port);
    return port;
  }

  /**
   * Plugs a host back-end (a TAP, a stream socket, another switch's port) into a new port: its
   * queue pair 0 is wired to the port both ways. When the back-end's `send` refuses a frame, the
   * port keeps it (and up to `maxQueuedFrames` more) until the back-end calls `writable()`.
   * The back-end is told to hand over only frames the switch can carry (`setGuestOffloads`).
   * Returns the port; closing it unplugs the back-end (which stays open).
   */
  uplink(backend: NetBackend, name?: string): NetBackend & { readonly id: number; readonly name: string } {
    const port = this.newPort(name ?? backend.description);
    const hostSide = backend.port(0);
    const switchSide = port.port(0);
    backend.setGuestOffloads(this.offloads);
    port.setGuestOffloads(backend.offloads);
    switchSide.attach({
      receive: (frame, hdr) => hostSide.send([frame], hdr),
      writable: () => undefined,
    });
    hostSide.attach({
      receive: (frame, hdr) => switchSide.send([frame], hdr),
      writable: () => switchSide.resumeReceive(),
    });
    port.onDisconnect = () => hostSide.detach();
    return port;
  }

  /** Connected ports. */
  get portCount(): number {
    return this.ports.length;
  }

  /** The learned table: MAC (`aa:bb:..`) → port name, without aged entries. For logs and tests. */
  addresses(): Map<string, string> {
    const now = this.clock.now();
    const out = new Map<string, string>();
    for (const [mac, entry] of this.fdb) if (now - entry.seen <= this.ageingMs) out.set(formatMac(mac), entry.port.name);
    return out;
  }

  /** Removes every port (their receivers stop getting frames). */
  close(): void {
    for (const port of [...this.ports]) port.disconnect();
  }

  /** @internal A frame from `from` (segments gathered here when there is more than one). */
  ingress(from: SwitchPort, segments: readonly Uint8Array[], hdr: VirtioNetHdr | undefined): void {
    let length = 0;
    for (const s of segments) length += s.length;
    // A header that asks for nothing is dropped here (a receiver then sees a plain frame).
    if (hdr !== undefined && (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) === 0 && hdr.gsoType === VIRTIO_NET_HDR_GSO_NONE) hdr = undefined;
    const limit = hdr !== undefined && hdr.gsoType !== VIRTIO_NET_HDR_GSO_NONE ? this.maxFrame : this.mtu + ETH_HLEN + VLAN_HLEN;
    if (length < ETH_HLEN || length > limit) {
      from.stats.txDropped++;
      return;
    }
    from.stats.txFrames++;
    from.stats.txBytes += length;
    let frame: Uint8Array;
    if (segments.length === 1) {
      frame = segments[0]!;
    } else {
      // Gather into the scratch buffer, or a fresh copy when a delivery is in progress (the
      // scratch may be the frame being delivered).
      frame = this.delivering ? new Uint8Array(length) : this.scratchOf(length);
      let at = 0;
      for (const s of segments) {
        frame.set(s, at);
        at += s.length;
      }
    }
    if (this.delivering) {
      // A receiver sent from inside receive(): finish the current frame first (order is kept).
      this.nested.push({ from, frame: frame === segments[0] ? frame.slice() : frame, hdr: hdr === undefined ? undefined : { ...hdr } });
      return;
    }
    this.delivering = true;
    try {
      this.switchFrame(from, frame, hdr);
      while (this.nested.length > 0) {
        const next = this.nested.shift()!;
        if (next.from.connected) this.switchFrame(next.from, next.frame, next.hdr);
      }
    } finally {
      this.delivering = false;
    }
  }

  /** @internal */
  scheduleBatchEnd(port: SwitchPort): void {
    this.batchEnds.add(port);
    if (this.batchScheduled) return;
    this.batchScheduled = true;
    void Promise.resolve().then(() => {
      this.batchScheduled = false;
      const ports = [...this.batchEnds];
      this.batchEnds.clear();
      for (const p of ports) p.batchEnd();
    });
  }

  /** @internal */
  remove(port: SwitchPort): void {
    const index = this.ports.indexOf(port);
    if (index >= 0) this.ports.splice(index, 1);
    for (const [mac, entry] of this.fdb) if (entry.port === port) this.fdb.delete(mac);
    this.batchEnds.delete(port);
  }

  private switchFrame(from: SwitchPort, frame: Uint8Array, hdr: VirtioNetHdr | undefined): void {
    const now = this.clock.now();
    // 802.1D learning: the source address lives behind the ingress port (group addresses never).
    if ((frame[6]! & 1) === 0) this.learn(macAt(frame, 6), from, now);
    if ((frame[0]! & 1) === 0) {
      const dst = macAt(frame, 0);
      const entry = this.fdb.get(dst);
      if (entry !== undefined) {
        if (now - entry.seen > this.ageingMs) {
          this.fdb.delete(dst);
          this.stats.aged++;
        } else {
          if (entry.port === from) {
            this.stats.filtered++;
          } else {
            this.stats.forwarded++;
            this.deliver(entry.port, frame, hdr);
          }
          return;
        }
      }
    }
    this.stats.flooded++;
    const ports = this.ports;
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i]!;
      if (p !== from) this.deliver(p, frame, hdr);
    }
  }

  private learn(mac: number, port: SwitchPort, now: number): void {
    const entry = this.fdb.get(mac);
    if (entry !== undefined) {
      if (entry.port !== port || now - entry.seen > this.ageingMs) this.stats.learned++;
      entry.port = port;
      entry.seen = now;
      return;
    }
    if (this.fdb.size >= this.maxAddresses) {
      // Forget aged entries first; when none, the oldest-learned one (Map keeps insertion order).
      for (const [key, e] of this.fdb) {
        if (now - e.seen > this.ageingMs) {
          this.fdb.delete(key);
          this.stats.aged++;
        }
      }
      if (this.fdb.size >= this.maxAddresses) {
        const oldest = this.fdb.keys().next().value!;
        this.fdb.delete(oldest);
        this.stats.evicted++;
      }
    }
    this.fdb.set(mac, { port, seen: now });
    this.stats.learned++;
  }

  private deliver(to: SwitchPort, frame: Uint8Array, hdr: VirtioNetHdr | undefined): void {
    if (hdr !== undefined) {
      const adapted = this.adaptOffload(to, frame, hdr);
      if (adapted === null) return;
      frame = adapted.frame;
      hdr = adapted.hdr;
    }
    to.offer(frame, hdr);
  }

  /** Makes a frame with an offload header acceptable to `to`'s guest, or null (dropped). */
  private adaptOffload(to: SwitchPort, frame: Uint8Array, hdr: VirtioNetHdr): { frame: Uint8Array; hdr: VirtioNetHdr | undefined } | null {
    const guest = to.guestOffloads;
    const gso = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
    if (gso !== VIRTIO_NET_HDR_GSO_NONE) {
      const ok =
        guest.csum &&
        ((gso === VIRTIO_NET_HDR_GSO_TCPV4 && guest.tso4) || (gso === VIRTIO_NET_HDR_GSO_TCPV6 && guest.tso6) || (gso === VIRTIO_NET_HDR_GSO_UDP && guest.ufo)) &&
        ((hdr.gsoType & VIRTIO_NET_HDR_GSO_ECN) === 0 || guest.ecn);
      if (ok) return { frame, hdr };
      this.stats.offloadDrops++;
      to.stats.rxDropped++;
      return null;
    }
    if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) === 0 || guest.csum) return { frame, hdr };
    // VIRTIO 1.3 §5.1.6.2: the checksum over [csum_start, end) goes at csum_start + csum_offset.
    const at = hdr.csumStart + hdr.csumOffset;
    if (hdr.csumStart >= frame.length || at + 2 > frame.length) {
      this.stats.offloadDrops++;
      to.stats.rxDropped++;
      return null;
    }
    const copy = frame.slice();
    completeChecksum(copy, hdr.csumStart, hdr.csumOffset);
    return { frame: copy, hdr: undefined };
  }

  private scratchOf(length: number): Uint8Array {
    if (this.scratch === undefined || this.scratch.length < length) this.scratch = new Uint8Array(this.maxFrame);
    return this.scratch.subarray(0, length);
  }
}

/** One switch port: a {@link NetBackend} with one queue pair. */
class SwitchPort implements NetBackend, NetPort {
  readonly description: string;
  readonly maxQueuePairs = 1;
  readonly offloads: NetOffloads;
  readonly mtu: number;
  readonly stats: NetBackendStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txDropped: 0 };
  guestOffloads: NetOffloads = NO_NET_OFFLOADS;
  connected = true;
  /** @internal Called once when the port leaves the switch (uplink detaches its back-end). */
  onDisconnect: (() => void) | undefined;
  private receiver: NetReceiver | undefined;
  private blocked = false;
  private readonly queue: Queued[] = [];
  private queueHead = 0;

  constructor(
    private readonly owner: L2Switch,
    readonly id: number,
    readonly name: string,
  ) {
    this.description = `switch:${owner.name}/${name}`;
    this.offloads = owner.offloads;
    this.mtu = owner.mtu;
  }

  port(index: number): NetPort {
    if (index !== 0) throw new BackendError('INVALID_OPTION', `a switch port has one queue pair, not ${index + 1}`, { device: this.description, field: 'queuePair' });
    return this;
  }

  setGuestOffloads(offloads: NetOffloads): void {
    this.guestOffloads = Object.freeze({ ...offloads });
  }

  send(frame: readonly Uint8Array[], hdr?: VirtioNetHdr): boolean {
    if (!this.connected) {
      this.stats.txDropped++;
      return true;
    }
    this.owner.ingress(this, frame, hdr);
    return true;
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
    this.blocked = false;
    this.drainQueue();
  }

  detach(): void {
    this.receiver = undefined;
    this.blocked = false;
    this.stats.rxDropped += this.queue.length - this.queueHead;
    this.queue.length = 0;
    this.queueHead = 0;
  }

  resumeReceive(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.drainQueue();
  }

  /** Frames waiting for the receiver (bounded by `maxQueuedFrames`). */
  get queuedFrames(): number {
    return this.queue.length - this.queueHead;
  }

  close(): Promise<void> {
    this.disconnect();
    return Promise.resolve();
  }

  /** @internal */
  disconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    this.detach();
    this.owner.remove(this);
    this.onDisconnect?.();
  }

  /** @internal A frame for this port's guest: delivered now, queued (copied) or dropped. */
  offer(frame: Uint8Array, hdr: VirtioNetHdr | undefined): void {
    const receiver = this.receiver;
    if (receiver === undefined) {
      this.stats.rxDropped++;
      return;
    }
    if (this.blocked) {
      this.enqueue(frame, hdr);
      return;
    }
    if (receiver.receive(frame, hdr)) {
      this.stats.rxFrames++;
      this.stats.rxBytes += frame.length;
      if (receiver.receiveBatchEnd) this.owner.scheduleBatchEnd(this);
    } else if (this.receiver === receiver) {
      // NetReceiver.receive: false = no buffers; the back-end keeps this frame.
      this.blocked = true;
      this.enqueue(frame, hdr);
    }
  }

  /** @internal */
  batchEnd(): void {
    this.receiver?.receiveBatchEnd?.();
  }

  private enqueue(frame: Uint8Array, hdr: VirtioNetHdr | undefined): void {
    if (this.queue.length - this.queueHead >= this.owner.maxQueuedFrames) {
      this.stats.rxDropped++;
      return;
    }
    this.queue.push({ frame: frame.slice(), hdr: hdr === undefined ? undefined : { ...hdr } });
  }

  private drainQueue(): void {
    const receiver = this.receiver;
    if (receiver === undefined) return;
    let delivered = false;
    while (this.queueHead < this.queue.length && !this.blocked && this.receiver === receiver) {
      const next = this.queue[this.queueHead]!;
      if (!receiver.receive(next.frame, next.hdr)) {
        if (this.receiver === receiver) this.blocked = true;
        break;
      }
      this.queueHead++;
      this.stats.rxFrames++;
      this.stats.rxBytes += next.frame.length;
      delivered = true;
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 64 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (delivered && receiver.receiveBatchEnd) this.owner.scheduleBatchEnd(this);
  }
}

/** A 48-bit MAC address at `offset` as a number (exact: below 2^53). */
function macAt(frame: Uint8Array, offset: number): number {
  return (
    frame[offset]! * 0x10000000000 +
    frame[offset + 1]! * 0x100000000 +
    ((frame[offset + 2]! << 24) >>> 0) +
    (frame[offset + 3]! << 16) +
    (frame[offset + 4]! << 8) +
    frame[offset + 5]!
  );
}

function formatMac(mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

function checkInt(value: number, min: number, max: number, field: string): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new BackendError('INVALID_OPTION', `${field} must be an integer in ${min}..${max}`, { device: 'l2-switch', field });
  return value;
}
