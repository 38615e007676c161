import {
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureBits,
  hasFeature,
  negotiateFeatures,
  plainNetHdr,
  setDriverOk,
  type Features,
  type VirtioNetHdr,
  type VirtioTransport,
} from '@virtio-ts/device';
import { DriverError } from '../errors.js';
import {
  ETHERNET_OVERHEAD,
  MERGEABLE_RX_BUFFER,
  MIN_RX_BUFFER,
  NET_CONFIG_OFFSETS as C,
  NET_MAX_MTU,
  NET_MIN_MTU,
  VIRTIO_ID_NET,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_S_LINK_UP,
} from './constants.js';
import { ControlQueue } from './control-queue.js';
import { ReceiveQueue, type ReceiveFault } from './receive-queue.js';
import { formatMac, parseMac, type MacAddress } from './stack/addresses.js';
import { ETHERNET_HEADER_SIZE, ETHERTYPE_IPV4 } from './stack/ethernet.js';
import type { FrameLink } from './stack/frame-link.js';
import { TransmitQueue, type TransmitLayout } from './transmit-queue.js';
import { randomBytes } from './web-timers.js';

/** Options of {@link NetDriver.open}. */
export interface NetDriverOptions {
  /** Queue pairs to use (1..max_virtqueue_pairs); default all the device offers, at most 8. */
  readonly queuePairs?: number;
  /** Negotiate VIRTIO_NET_F_MRG_RXBUF when offered; default true. */
  readonly mergeableRxBuffers?: boolean;
  /** Negotiate VIRTIO_NET_F_CSUM and VIRTIO_NET_F_GUEST_CSUM when offered; default false. */
  readonly checksumOffload?: boolean;
  /** Negotiate VIRTIO_F_RING_PACKED when offered; default true. */
  readonly packed?: boolean;
  /** Receive buffers kept posted per receiveq; default what fits 1 MiB (4..queue size). */
  readonly receiveBuffers?: number;
  /** Size of each receive buffer (header included); default per §5.1.6.3.1 (see README). */
  readonly receiveBufferSize?: number;
  /** The IP MTU when the device does not offer VIRTIO_NET_F_MTU; default 1500 (68..65535). */
  readonly mtu?: number;
  /**
   * A MAC address to use: set on the device with VIRTIO_NET_CTRL_MAC_ADDR_SET when negotiated,
   * otherwise used locally when the device has no VIRTIO_NET_F_MAC. Default: the device's, or a
   * random locally administered one (§5.1.4.2).
   */
  readonly mac?: MacAddress | string;
  readonly transmitLayout?: TransmitLayout;
  readonly queueSize?: number;
}

/** Options of {@link NetDriver.transmit}. */
export interface TransmitOptions {
  /** The queue pair to send on (0..queuePairs−1); default: chosen per flow (see README). */
  readonly queue?: number;
  /** A header asking for an offload (NEEDS_CSUM needs VIRTIO_NET_F_CSUM); default none. */
  readonly hdr?: VirtioNetHdr;
}

/** Counters of a {@link NetDriver}, like `ip -s link`. */
export interface NetDriverStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Transmissions the device has returned. */
  txCompleted: number;
  /** `send`/`transmit` calls refused because the transmitq was full. */
  txFull: number;
  /** Receive completions refused, by fault. */
  rxFaults: Record<ReceiveFault, number>;
  /** Queues the device broke with an invalid used element (§2.7.8.1); each sets `needsReset`. */
  brokenQueues: number;
}

const RING_FEATURES = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED);
const NET_FEATURES = featureBits(
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_MQ,
);
/** §5.1.3.1: features that need the control virtqueue. */
const NEEDS_CTRL_VQ = featureBits(VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_MQ);
const DEFAULT_MAX_PAIRS = 8;
const RECEIVE_MEMORY_PER_QUEUE = 1 << 20;

/**
 * A virtio-net front-end driver model (VIRTIO 1.3 §5.1), like Linux's virtio_net: negotiates
 * MAC/STATUS/MTU/MRG_RXBUF/CTRL_VQ/CTRL_RX/CTRL_MAC_ADDR/MQ (and CSUM/GUEST_CSUM on request),
 * keeps every receiveq filled, reassembles merged buffers, transmits with back-pressure, sends
 * control commands and follows the link status. It is a {@link FrameLink}, so an
 * {@link IpInterface} runs on it directly. Whatever the device writes is validated: refused
 * completions are counted in `stats.rxFaults`, never thrown.
 *
 * @example
 * ```ts
 * const nic = await NetDriver.open(createPciHarness(new NetDevice({ backend })).transport);
 * nic.onFrame((frame) => console.log('rx', frame.length));
 * nic.send(frame);                       // false when the transmitq is full: wait for onWritable
 * await nic.setPromiscuous(true);        // VIRTIO_NET_CTRL_RX_PROMISC
 * const host = new IpInterface({ link: nic, address: '10.0.0.2' });
 * nic.reset();                           // every buffer returned to the allocator
 * ```
 */
export class NetDriver implements FrameLink {
  readonly features: Features;
  /** Our MAC address (the device's with VIRTIO_NET_F_MAC, else chosen here). */
  mac: MacAddress;
  /** IP MTU: the device's `mtu` with VIRTIO_NET_F_MTU, else the option (default 1500). */
  readonly mtu: number;
  /** max_virtqueue_pairs with MQ, else 1. */
  readonly maxQueuePairs: number;
  /** Link state (VIRTIO_NET_S_LINK_UP; always true without VIRTIO_NET_F_STATUS, §5.1.4.2). */
  linkUp: boolean;
  /** The device set DEVICE_NEEDS_RESET (§2.1.2): call `reset` and open again. */
  needsReset = false;
  readonly receiveBufferSize: number;
  readonly stats: NetDriverStats = {
    rxFrames: 0,
    rxBytes: 0,
    txFrames: 0,
    txBytes: 0,
    txCompleted: 0,
    txFull: 0,
    rxFaults: { usedLengthBeyondBuffer: 0, shortHeader: 0, numBuffersZero: 0, numBuffersBeyondPosted: 0, numBuffersNotOne: 0, unexpectedGso: 0, badChecksumOffload: 0, runt: 0 },
    brokenQueues: 0,
  };
  private activePairs = 1;
  private readonly receiveQueues: ReceiveQueue[] = [];
  private readonly transmitQueues: TransmitQueue[] = [];
  private control: ControlQueue | undefined;
  private readonly frameListeners = new Set<(frame: Uint8Array) => void>();
  private readonly writableListeners = new Set<() => void>();
  private readonly linkListeners = new Set<(up: boolean) => void>();
  private readonly faultListeners = new Set<(error: DriverError) => void>();
  private closed = false;

  private constructor(
    readonly transport: VirtioTransport,
    features: Features,
    config: { mac: MacAddress; mtu: number; maxQueuePairs: number; linkUp: boolean },
    options: NetDriverOptions,
  ) {
    this.features = features;
    this.mac = config.mac;
    this.mtu = config.mtu;
    this.maxQueuePairs = config.maxQueuePairs;
    this.linkUp = config.linkUp;
    const mergeable = hasFeature(features, VIRTIO_NET_F_MRG_RXBUF);
    // §5.1.6.3.1: with MRG_RXBUF "each buffer MUST be at least the size of the struct
    // virtio_net_hdr" (page-sized here); without it, buffers of at least 1526 bytes, and with
    // MTU "enough receive buffers to receive at least one receive packet of size mtu".
    const minimum = mergeable ? VIRTIO_NET_HDR_SIZE : Math.max(MIN_RX_BUFFER, VIRTIO_NET_HDR_SIZE + this.mtu + ETHERNET_OVERHEAD);
    this.receiveBufferSize = Math.max(options.receiveBufferSize ?? (mergeable ? MERGEABLE_RX_BUFFER : minimum), minimum);
    const pairs = Math.min(options.queuePairs ?? DEFAULT_MAX_PAIRS, this.maxQueuePairs);
    if (!Number.isInteger(pairs) || pairs < 1) throw new DriverError('INVALID_ARGUMENT', `queue pairs ${options.queuePairs}`, { device: 'net' });
    // §5.1.2: receiveq1 = 0, transmitq1 = 1, …, receiveqN = 2(N−1), transmitqN = 2(N−1)+1, controlq = 2N
    // (N = max_virtqueue_pairs with MQ, else 1).
    const controlIndex = 2 * this.maxQueuePairs;
    const hasControl = hasFeature(features, VIRTIO_NET_F_CTRL_VQ);
    if (2 * pairs > transport.numQueues || (hasControl && controlIndex >= transport.numQueues)) {
      throw new DriverError('PROTOCOL', `the device has ${transport.numQueues} queues, fewer than ${pairs} pairs${hasControl ? ' and a controlq' : ''} need`, { device: 'net' });
    }
    const size = options.queueSize;
    const buffers = options.receiveBuffers ?? Math.max(4, Math.floor(RECEIVE_MEMORY_PER_QUEUE / this.receiveBufferSize));
    for (let i = 0; i < pairs; i++) {
      this.receiveQueues.push(
        new ReceiveQueue(transport, 2 * i, {
          ...(size !== undefined ? { size } : {}),
          buffers,
          bufferSize: this.receiveBufferSize,
          mergeable,
          guestCsum: hasFeature(features, VIRTIO_NET_F_GUEST_CSUM),
          onPacket: (frame) => this.onPacket(frame),
          onFault: (fault) => this.stats.rxFaults[fault]++,
          onBroken: (error) => this.onBroken(error, 2 * i),
        }),
      );
      this.transmitQueues.push(new TransmitQueue(transport, 2 * i + 1, options.transmitLayout ?? 'contiguous', this.stats, () => this.onTransmitRoom(), (error) => this.onBroken(error, 2 * i + 1), size));
    }
    if (hasControl) this.control = new ControlQueue(transport, controlIndex, (error) => this.onBroken(error, controlIndex), size);
    transport.onConfigChange(() => this.onConfigChange());
  }

  /**
   * Initialises the device (§3.1.1, §5.1.5): negotiates, reads the configuration, sets up the
   * queues, sets DRIVER_OK, fills the receiveqs, then (with MQ) enables the queue pairs with
   * VQ_PAIRS_SET and (with CTRL_MAC_ADDR and the `mac` option) sets the MAC address.
   */
  static async open(transport: VirtioTransport, options: NetDriverOptions = {}): Promise<NetDriver> {
    if (transport.deviceType !== VIRTIO_ID_NET) throw new DriverError('UNSUPPORTED', `device type ${transport.deviceType} is not a network device`, { device: 'net' });
    const features = negotiateNetFeatures(transport, options);
    let driver: NetDriver;
    try {
      driver = new NetDriver(transport, features, readNetConfig(transport, features, options), options);
    } catch (error) {
      // §3.1.1: "If any of these steps go irrecoverably wrong, the driver SHOULD set the FAILED status bit".
      transport.setStatus(transport.getStatus() | VIRTIO_CONFIG_S_FAILED);
      throw error;
    }
    setDriverOk(transport);
    for (const queue of driver.receiveQueues) queue.fill();
    const pairs = driver.receiveQueues.length;
    // §5.1.6.5.5: after DRIVER_OK only the first pair is used until VQ_PAIRS_SET.
    if (pairs > 1) await driver.setQueuePairs(pairs);
    if (options.mac !== undefined && hasFeature(features, VIRTIO_NET_F_CTRL_MAC_ADDR)) await driver.setMacAddress(options.mac);
    return driver;
  }

  /** Queue pairs in use (after VQ_PAIRS_SET). */
  get queuePairs(): number {
    return this.activePairs;
  }

  /** Transmits one Ethernet frame (FrameLink); false when the chosen transmitq is full. */
  send(frame: Uint8Array): boolean {
    return this.transmit([frame]);
  }

  /**
   * Transmits a frame given as parts (scatter-gather with `transmitLayout: 'scatter'`). Returns
   * false when the transmitq is full: nothing was queued; retry after `onWritable`. Throws
   * INVALID_ARGUMENT for a frame outside 14..mtu+14 bytes (§5.1.4.2: "The driver SHOULD NOT
   * transmit packets exceeding mtu") or an unknown queue, DEVICE_RESET after `reset`.
   */
  transmit(parts: readonly Uint8Array[], options: TransmitOptions = {}): boolean {
    if (this.closed) throw new DriverError('DEVICE_RESET', 'the driver was reset', { device: 'net' });
    let length = 0;
    for (const part of parts) length += part.length;
    if (length < ETHERNET_HEADER_SIZE || length > this.mtu + ETHERNET_OVERHEAD) {
      throw new DriverError('INVALID_ARGUMENT', `frame of ${length} bytes is outside 14..${this.mtu + ETHERNET_OVERHEAD} (MTU ${this.mtu})`, { device: 'net', length });
    }
    const hdr = options.hdr ?? plainNetHdr();
    if (options.hdr !== undefined) this.checkTransmitHdr(options.hdr, length);
    // §5.1.6.2.1: "The driver MUST set num_buffers to zero" (for transmitted packets).
    const wire: VirtioNetHdr = { ...hdr, numBuffers: 0 };
    const index = options.queue ?? this.pickQueue(parts);
    const queue = this.transmitQueues[index];
    if (queue === undefined || index >= this.activePairs) {
      throw new DriverError('INVALID_ARGUMENT', `transmit queue pair ${index} is not in use (${this.activePairs} pairs)`, { device: 'net', queue: index });
    }
    if (!queue.send(parts, wire)) {
      this.stats.txFull++;
      return false;
    }
    this.stats.txFrames++;
    this.stats.txBytes += length;
    return true;
  }

  /** Like `transmit`, but waits for room when the transmitq is full. Rejects DEVICE_RESET on reset. */
  async sendAsync(frame: Uint8Array | readonly Uint8Array[], options: TransmitOptions = {}): Promise<void> {
    const parts = frame instanceof Uint8Array ? [frame] : frame;
    while (!this.transmit(parts, options)) {
      await new Promise<void>((resolve) => {
        const off = this.onWritable(() => {
          off();
          resolve();
        });
        if (this.closed) resolve();
      });
    }
  }

  onFrame(listener: (frame: Uint8Array) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  onWritable(listener: () => void): () => void {
    this.writableListeners.add(listener);
    return () => this.writableListeners.delete(listener);
  }

  /** Link status changes from configuration change notifications (VIRTIO_NET_F_STATUS). */
  onLinkChange(listener: (up: boolean) => void): () => void {
    this.linkListeners.add(listener);
    return () => this.linkListeners.delete(listener);
  }

  /**
   * Fatal device faults: a queue broken by an invalid used element (PROTOCOL, with the ring's
   * error as `cause`). The driver then sets `needsReset` and reports the link down.
   */
  onFault(listener: (error: DriverError) => void): () => void {
    this.faultListeners.add(listener);
    return () => this.faultListeners.delete(listener);
  }

  /** VIRTIO_NET_CTRL_RX_PROMISC (§5.1.6.5.1; needs CTRL_RX). */
  setPromiscuous(on: boolean): Promise<void> {
    return this.command(VIRTIO_NET_F_CTRL_RX, 'VIRTIO_NET_F_CTRL_RX', VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(on ? 1 : 0));
  }

  /** VIRTIO_NET_CTRL_RX_ALLMULTI (§5.1.6.5.1; needs CTRL_RX). */
  setAllMulticast(on: boolean): Promise<void> {
    return this.command(VIRTIO_NET_F_CTRL_RX, 'VIRTIO_NET_F_CTRL_RX', VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(on ? 1 : 0));
  }

  /** VIRTIO_NET_CTRL_MAC_ADDR_SET (§5.1.6.5.2; needs CTRL_MAC_ADDR); `mac` changes once acked. */
  async setMacAddress(mac: MacAddress | string): Promise<void> {
    const bytes = typeof mac === 'string' ? parseMac(mac) : mac.slice(0, 6);
    if (bytes.length !== 6) throw new DriverError('INVALID_ARGUMENT', 'a MAC address has 6 bytes', { device: 'net' });
    await this.command(VIRTIO_NET_F_CTRL_MAC_ADDR, 'VIRTIO_NET_F_CTRL_MAC_ADDR', VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, bytes);
    this.mac = bytes;
  }

  /**
   * VIRTIO_NET_CTRL_MAC_TABLE_SET (§5.1.6.5.2; needs CTRL_RX): two `struct virtio_net_ctrl_mac
   * { le32 entries; u8 macs[entries][6]; }`, unicast then multicast.
   */
  setMacTable(unicast: readonly (MacAddress | string)[], multicast: readonly (MacAddress | string)[]): Promise<void> {
    const table = (macs: readonly (MacAddress | string)[]) => {
      const out = new Uint8Array(4 + 6 * macs.length);
      new DataView(out.buffer).setUint32(0, macs.length, true);
      macs.forEach((mac, i) => out.set(typeof mac === 'string' ? parseMac(mac) : mac.subarray(0, 6), 4 + 6 * i));
      return out;
    };
    const a = table(unicast);
    const b = table(multicast);
    const data = new Uint8Array(a.length + b.length);
    data.set(a);
    data.set(b, a.length);
    return this.command(VIRTIO_NET_F_CTRL_RX, 'VIRTIO_NET_F_CTRL_RX', VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, data);
  }

  /**
   * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (§5.1.6.5.5; needs MQ). §5.1.6.5.5.1: "The driver MUST NOT
   * set virtqueue_pairs to 0 or greater than max_virtqueue_pairs" — and not beyond the pairs
   * this driver set up. Transmission uses the new count once acked.
   */
  async setQueuePairs(pairs: number): Promise<void> {
    if (!Number.isInteger(pairs) || pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > this.receiveQueues.length) {
      throw new DriverError('INVALID_ARGUMENT', `queue pairs ${pairs} outside 1..${this.receiveQueues.length}`, { device: 'net' });
    }
    const data = new Uint8Array(2);
    new DataView(data.buffer).setUint16(0, pairs, true);
    await this.command(VIRTIO_NET_F_MQ, 'VIRTIO_NET_F_MQ', VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, data);
    this.activePairs = pairs;
  }

  /**
   * Resets the device (§2.4) and takes every buffer back: receive buffers, frames in flight and
   * pooled transmit buffers return to the allocator; pending control commands reject
   * DEVICE_RESET. The driver is unusable afterwards (open a new one).
   */
  reset(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.reset();
    for (const queue of this.receiveQueues) queue.close();
    for (const queue of this.transmitQueues) queue.close();
    this.control?.close();
    for (const listener of [...this.writableListeners]) listener(); // wake sendAsync waiters: they see DEVICE_RESET
  }

  /** Frames in flight on the transmitqs. */
  get transmitInFlight(): number {
    return this.transmitQueues.reduce((n, q) => n + q.inFlight, 0);
  }

  private command(feature: number, name: string, commandClass: number, command: number, data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new DriverError('DEVICE_RESET', 'the driver was reset', { device: 'net' }));
    // §5.1.6.5: commands of a class need its feature (and the controlq).
    if (this.control === undefined || !hasFeature(this.features, feature)) {
      return Promise.reject(new DriverError('UNSUPPORTED', `${name} was not negotiated`, { device: 'net' }));
    }
    return this.control.command(commandClass, command, data);
  }

  private checkTransmitHdr(hdr: VirtioNetHdr, length: number): void {
    // §5.1.6.2.1: without CSUM "the driver MUST set flags to zero"; without HOST_TSO*/UFO/USO "the driver MUST set gso_type to VIRTIO_NET_HDR_GSO_NONE".
    if (hdr.gsoType !== VIRTIO_NET_HDR_GSO_NONE) throw new DriverError('UNSUPPORTED', 'segmentation offload was not negotiated', { device: 'net' });
    if (hdr.flags === 0) return;
    if (hdr.flags !== VIRTIO_NET_HDR_F_NEEDS_CSUM || !hasFeature(this.features, VIRTIO_NET_F_CSUM)) {
      throw new DriverError('UNSUPPORTED', `header flags ${hdr.flags} need VIRTIO_NET_F_CSUM`, { device: 'net' });
    }
    if (hdr.csumStart + hdr.csumOffset + 2 > length) throw new DriverError('INVALID_ARGUMENT', 'csum_start + csum_offset lies outside the frame', { device: 'net', length });
  }

  /** Per-flow transmitq choice: IPv4 addresses, protocol and ports; other frames by destination MAC. */
  private pickQueue(parts: readonly Uint8Array[]): number {
    if (this.activePairs === 1) return 0;
    const frame = parts.length === 1 ? parts[0]! : concatParts(parts, 64);
    let hash = 0;
    if (frame.length >= 34 && ((frame[12]! << 8) | frame[13]!) === ETHERTYPE_IPV4) {
      for (let i = 26; i < 34; i++) hash = (hash * 31 + frame[i]!) >>> 0; // source, destination
      hash = (hash * 31 + frame[23]!) >>> 0; // protocol
      const ihl = (frame[14]! & 0x0f) * 4;
      const fragment = ((frame[20]! << 8) | frame[21]!) & 0x3fff;
      if (fragment === 0 && frame.length >= 14 + ihl + 4 && (frame[23] === 6 || frame[23] === 17)) {
        for (let i = 14 + ihl; i < 14 + ihl + 4; i++) hash = (hash * 31 + frame[i]!) >>> 0; // ports
      }
    } else {
      for (let i = 0; i < 6; i++) hash = (hash * 31 + (frame[i] ?? 0)) >>> 0;
    }
    return hash % this.activePairs;
  }

  private onPacket(frame: Uint8Array): void {
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    for (const listener of this.frameListeners) {
      try {
        listener(frame);
      } catch {
        // A listener's bug must not stop the receive path (the buffers must be reposted).
      }
    }
  }

  private onBroken(cause: unknown, queue: number): void {
    this.stats.brokenQueues++;
    this.needsReset = true;
    const error = new DriverError('PROTOCOL', `the device returned an invalid used element on queue ${queue}; reset the driver`, { device: 'net', queue }, { cause });
    for (const listener of [...this.faultListeners]) listener(error);
    if (this.linkUp) {
      this.linkUp = false;
      for (const listener of [...this.linkListeners]) listener(false);
    }
  }

  private onTransmitRoom(): void {
    for (const listener of [...this.writableListeners]) listener();
  }

  private onConfigChange(): void {
    if (this.closed) return;
    let up = this.linkUp;
    if ((this.transport.getStatus() & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) {
      this.needsReset = true;
      up = false;
    } else if (hasFeature(this.features, VIRTIO_NET_F_STATUS)) {
      const status = this.transport.readConfig(C.status, 2);
      up = ((status[0]! | (status[1]! << 8)) & VIRTIO_NET_S_LINK_UP) !== 0;
    }
    if (up !== this.linkUp) {
      this.linkUp = up;
      for (const listener of [...this.linkListeners]) listener(up);
    }
  }
}

/**
 * §3.1.1 steps 1–6 with §5.1.3.1's dependencies: the offered features are read first (after
 * ACKNOWLEDGE | DRIVER), so that CTRL_RX, CTRL_MAC_ADDR and MQ are accepted only with CTRL_VQ,
 * and MTU only when the device's mtu is valid (§5.1.4.1: 68..65535; Linux drops the feature
 * too). `negotiateFeatures` then resets again and runs the steps with the final set.
 */
function negotiateNetFeatures(transport: VirtioTransport, options: NetDriverOptions): Features {
  transport.reset();
  transport.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  transport.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  const offered = transport.getDeviceFeatures();
  let wanted = RING_FEATURES | NET_FEATURES;
  if (options.packed === false) wanted &= ~featureBits(VIRTIO_F_RING_PACKED);
  if (options.mergeableRxBuffers === false) wanted &= ~featureBits(VIRTIO_NET_F_MRG_RXBUF);
  if (options.checksumOffload === true) wanted |= featureBits(VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM);
  if (!hasFeature(offered, VIRTIO_NET_F_CTRL_VQ)) wanted &= ~NEEDS_CTRL_VQ;
  if (hasFeature(offered, VIRTIO_NET_F_MTU)) {
    // §3.1.1 step 4: the driver MAY read the device-specific configuration before accepting features.
    const bytes = transport.readConfig(C.mtu, 2);
    const mtu = bytes[0]! | (bytes[1]! << 8);
    if (mtu < NET_MIN_MTU) wanted &= ~featureBits(VIRTIO_NET_F_MTU);
  }
  return negotiateFeatures(transport, wanted & offered);
}

/** Reads mac, status, max_virtqueue_pairs and mtu in one generation-checked read (§2.5.1, §5.1.4). */
function readNetConfig(transport: VirtioTransport, features: Features, options: NetDriverOptions): { mac: MacAddress; mtu: number; maxQueuePairs: number; linkUp: boolean } {
  const has = (bit: number) => hasFeature(features, bit);
  const length = has(VIRTIO_NET_F_MTU) ? 12 : has(VIRTIO_NET_F_MQ) ? 10 : has(VIRTIO_NET_F_STATUS) ? 8 : has(VIRTIO_NET_F_MAC) ? 6 : 0;
  const bytes = length > 0 ? transport.readConfig(0, length) : new Uint8Array(0);
  const u16 = (offset: number) => bytes[offset]! | (bytes[offset + 1]! << 8);
  let mac: MacAddress;
  if (has(VIRTIO_NET_F_MAC) && !(options.mac !== undefined && has(VIRTIO_NET_F_CTRL_MAC_ADDR))) {
    // §5.1.4.2: "If the driver negotiates the VIRTIO_NET_F_MAC feature, the driver MUST set the physical address of the NIC to mac."
    mac = bytes.slice(C.mac, C.mac + 6);
  } else if (options.mac !== undefined) {
    mac = typeof options.mac === 'string' ? parseMac(options.mac) : options.mac.slice(0, 6);
  } else {
    // §5.1.4.2: "Otherwise, it SHOULD use a locally-administered MAC address."
    mac = randomBytes(6);
    mac[0] = (mac[0]! & 0xfe) | 0x02;
  }
  let maxQueuePairs = 1;
  if (has(VIRTIO_NET_F_MQ)) {
    const value = u16(C.maxVirtqueuePairs);
    // §5.1.4.1: "The device MUST set max_virtqueue_pairs to between 1 and 0x8000 inclusive"; a device that does not gets one pair.
    maxQueuePairs = value >= VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN && value <= VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX ? value : 1;
  }
  const optionMtu = options.mtu ?? 1500;
  if (!Number.isInteger(optionMtu) || optionMtu < NET_MIN_MTU || optionMtu > NET_MAX_MTU) {
    throw new DriverError('INVALID_ARGUMENT', `MTU ${optionMtu} is outside ${NET_MIN_MTU}..${NET_MAX_MTU}`, { device: 'net' });
  }
  const mtu = has(VIRTIO_NET_F_MTU) ? u16(C.mtu) : optionMtu;
  // §5.1.4.2: "If the driver does not negotiate the VIRTIO_NET_F_STATUS feature, it SHOULD assume the link is active."
  const linkUp = has(VIRTIO_NET_F_STATUS) ? (u16(C.status) & VIRTIO_NET_S_LINK_UP) !== 0 : true;
  return { mac, mtu, maxQueuePairs, linkUp };
}

function concatParts(parts: readonly Uint8Array[], limit: number): Uint8Array {
  const out = new Uint8Array(limit);
  let at = 0;
  for (const part of parts) {
    if (at >= limit) break;
    const n = Math.min(part.length, limit - at);
    out.set(part.subarray(0, n), at);
    at += n;
  }
  return out.subarray(0, at);
}

/** For logs: `virtio-net 52:54:00:12:34:56 mtu 1500 pairs 2/4 link up`. */
export function describeNetDriver(driver: NetDriver): string {
  return `virtio-net ${formatMac(driver.mac)} mtu ${driver.mtu} pairs ${driver.queuePairs}/${driver.maxQueuePairs} link ${driver.linkUp ? 'up' : 'down'}`;
}
