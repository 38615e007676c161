import {
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_NET,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_S_ANNOUNCE,
  VIRTIO_NET_S_LINK_UP,
  featureBit,
  featureBits,
  hasFeature,
  MAX_QUEUES,
  type ActivationContext,
  type Features,
  type VirtioDevice,
  type VirtioNetHdr,
  parseMac,
  isGroupAddress,
  formatMac,
} from '@virtio-ts/device';
import type { DeviceQueue } from '@virtio-ts/ring';
import { ringFeatures, type RingFeatureOptions } from '../common-features.js';
import { BackendError } from '../errors.js';
import { QueueRunner } from '../queue-runner.js';
import { ControlQueue } from './control-queue.js';
import { NetMetrics } from './metrics.js';
import { type NetBackend, type NetOffloads, type NetReceiver } from './net-backend.js';
import { restoreNetState, type NetDeviceState } from './persist.js';
import { RxFilter } from './rx-filter.js';
import { RxQueue } from './rx-queue.js';
import { ETH_HLEN, VLAN_HLEN, type TxOffloads } from './tx-header.js';
import { TxQueue } from './tx-queue.js';

/** §5.1.4: the fields this device exposes — mac, status, max_virtqueue_pairs, mtu. */
export const NET_CONFIG_SIZE = 12;
/** QEMU's default MAC (a locally administered 52:54:00 address). */
export const DEFAULT_MAC = '52:54:00:12:34:56';

/** Options of a {@link NetDevice}. */
export interface NetDeviceOptions extends RingFeatureOptions {
  /** Where frames go and come from (the L2 switch, a TAP, a stream socket, a test double). */
  readonly backend: NetBackend;
  /** The station address (VIRTIO_NET_F_MAC, always offered). Default {@link DEFAULT_MAC}. */
  readonly mac?: string | Uint8Array;
  /**
   * Queue pairs (rx/tx) the device declares; VIRTIO_NET_F_MQ is offered when > 1 and the
   * back-end has that many ports. At most `backend.maxQueuePairs`. Default 1.
   */
  readonly queuePairs?: number;
  /** Maximum size of each queue, a power of two. Default 256. */
  readonly queueSize?: number;
  /**
   * Declare the control queue and offer the VIRTIO_NET_F_CTRL_* features. Default true. False
   * gives a data-plane-only device (rx/tx queues only) for vhost-user-net, where the front-end
   * (QEMU) keeps the control queue and the configuration space.
   */
  readonly controlQueue?: boolean;
  /** Offer VIRTIO_NET_F_MRG_RXBUF. Default true. */
  readonly mergeableRxBuffers?: boolean;
  /** Offer VIRTIO_NET_F_STATUS (link state with a config interrupt). Default true. */
  readonly status?: boolean;
  /** Link state at creation. Default true (up). */
  readonly linkUp?: boolean;
  /** `mtu` of VIRTIO_NET_F_MTU (68..65535, at most `backend.mtu`). Default `backend.mtu`, capped at 65535. */
  readonly mtu?: number;
  /** Offloads to offer, further limited by the back-end's. Default: all the back-end honours. */
  readonly offloads?: Partial<NetOffloads>;
  /** Offer VIRTIO_NET_F_GUEST_ANNOUNCE. Default true. */
  readonly guestAnnounce?: boolean;
  /**
   * Filter received frames by destination MAC (§5.1.6.5.1, §5.1.6.5.2). Default: true with the
   * control queue; false without it, where the front-end (QEMU) owns `mac` and the filter and
   * this device cannot know the guest's address.
   */
  readonly rxFilter?: boolean;
}

/** The GUEST_* offload feature bits, in the order of {@link NetOffloads}' fields. */
const GUEST_OFFLOAD_BITS = [VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_ECN] as const;
const GUEST_OFFLOAD_MASK = featureBits(...GUEST_OFFLOAD_BITS);

/** §5.1.3.1 "Feature bit requirements": [feature, requires any of]. */
const DEPENDENCIES: readonly (readonly [number, readonly number[]])[] = [
  [VIRTIO_NET_F_GUEST_TSO4, [VIRTIO_NET_F_GUEST_CSUM]],
  [VIRTIO_NET_F_GUEST_TSO6, [VIRTIO_NET_F_GUEST_CSUM]],
  [VIRTIO_NET_F_GUEST_ECN, [VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6]],
  [VIRTIO_NET_F_GUEST_UFO, [VIRTIO_NET_F_GUEST_CSUM]],
  [VIRTIO_NET_F_HOST_TSO4, [VIRTIO_NET_F_CSUM]],
  [VIRTIO_NET_F_HOST_TSO6, [VIRTIO_NET_F_CSUM]],
  [VIRTIO_NET_F_HOST_ECN, [VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6]],
  [VIRTIO_NET_F_HOST_UFO, [VIRTIO_NET_F_CSUM]],
  [VIRTIO_NET_F_CTRL_RX, [VIRTIO_NET_F_CTRL_VQ]],
  [VIRTIO_NET_F_CTRL_VLAN, [VIRTIO_NET_F_CTRL_VQ]],
  [VIRTIO_NET_F_GUEST_ANNOUNCE, [VIRTIO_NET_F_CTRL_VQ]],
  [VIRTIO_NET_F_MQ, [VIRTIO_NET_F_CTRL_VQ]],
  [VIRTIO_NET_F_CTRL_MAC_ADDR, [VIRTIO_NET_F_CTRL_VQ]],
  // §5.1.4.2: a driver "SHOULD NOT negotiate VIRTIO_NET_F_CTRL_RX_EXTRA if it does not negotiate
  // VIRTIO_NET_F_CTRL_VQ"; Linux refuses it too. Refused here as a dependency.
  [VIRTIO_NET_F_CTRL_RX_EXTRA, [VIRTIO_NET_F_CTRL_VQ]],
  [VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, [VIRTIO_NET_F_CTRL_VQ]],
];

/** One queue pair's receiver: what the back-end's port calls. */
class PairReceiver implements NetReceiver {
  rx: RxQueue | undefined;
  tx: TxQueue | undefined;
  constructor(private readonly onDrop: () => void) {}
  receive(frame: Uint8Array, hdr?: VirtioNetHdr): boolean {
    if (this.rx === undefined) {
      this.onDrop();
      return true;
    }
    return this.rx.receive(frame, hdr);
  }
  receiveBatchEnd(): void {
    this.rx?.flush();
  }
  writable(): void {
    this.tx?.writable();
  }
}

/**
 * A virtio-net device (VIRTIO 1.3 §5.1) over any {@link NetBackend}: receive and transmit
 * queues per queue pair, mergeable receive buffers, link status, MTU, the control queue (receive
 * modes, MAC table, MAC address, multiqueue, guest offloads, announce) and the checksum and
 * segmentation offloads the back-end honours. Guest faults are dropped frames and counters
 * ({@link NetDevice.metrics}); a broken ring becomes DEVICE_NEEDS_RESET.
 *
 * @example
 * ```ts
 * const device = new NetDevice({ backend, mac: '52:54:00:00:00:01', queuePairs: 2 });
 * transport.attach(device);   // pci, mmio or vhost-user: negotiation, queues, DRIVER_OK
 * // ... frames flow between the guest and the back-end ...
 * device.setLinkUp(false);    // VIRTIO_NET_S_LINK_UP cleared, config interrupt
 * console.log(JSON.stringify(device.metrics));
 * ```
 */
export class NetDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = NET_CONFIG_SIZE;
  readonly metrics: NetMetrics;
  readonly backend: NetBackend;
  /** Queue pairs declared (max_virtqueue_pairs). */
  readonly queuePairs: number;
  readonly mtu: number;
  private readonly hasControlQueue: boolean;
  private readonly defaultMac: Uint8Array;
  private readonly macBytes: Uint8Array;
  private readonly filter: RxFilter;
  private readonly configBytes = new Uint8Array(NET_CONFIG_SIZE);
  private link: boolean;
  private announcePending = false;
  private generation = 0;
  private negotiated: Features = 0n;
  private context: ActivationContext | undefined;
  private activePairs = 1;
  /** Pairs the driver can use now: 1..activePairs (control queue) or those with queues (vhost-user). */
  private readonly attached: boolean[];
  private readonly receivers: PairReceiver[];
  private rxQueues: (RxQueue | undefined)[] = [];
  private txQueues: (TxQueue | undefined)[] = [];
  private control: ControlQueue | undefined;
  private controlIndex = -1;
  private guestOffloadBits: Features = 0n;

  constructor(options: NetDeviceOptions) {
    const backend = options.backend;
    this.backend = backend;
    const pairs = options.queuePairs ?? 1;
    const control = options.controlQueue ?? true;
    const queueSize = options.queueSize ?? 256;
    const maxPairs = Math.min(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX, Math.floor((MAX_QUEUES - 1) / 2));
    check(Number.isInteger(backend.maxQueuePairs) && backend.maxQueuePairs >= 1, 'backend.maxQueuePairs', 'must be a positive integer');
    check(Number.isInteger(pairs) && pairs >= 1 && pairs <= Math.min(maxPairs, backend.maxQueuePairs), 'queuePairs', `must be 1..${Math.min(maxPairs, backend.maxQueuePairs)} (the back-end's maxQueuePairs)`);
    check(Number.isInteger(queueSize) && queueSize >= 2 && queueSize <= 32768 && (queueSize & (queueSize - 1)) === 0, 'queueSize', 'must be a power of two in 2..32768');
    const mtu = options.mtu ?? Math.min(backend.mtu, 65535);
    // §5.1.4.1: "The device MUST set mtu to between 68 and 65535 inclusive".
    check(Number.isInteger(mtu) && mtu >= 68 && mtu <= 65535 && mtu <= backend.mtu, 'mtu', `must be 68..65535 and at most the back-end's ${backend.mtu}`);
    let mac: Uint8Array;
    try {
      mac = parseMac(options.mac ?? DEFAULT_MAC);
    } catch (error) {
      throw new BackendError('INVALID_OPTION', `net option mac ${error instanceof Error ? error.message : String(error)}`, { device: 'net', field: 'mac' }, { cause: error });
    }
    check(!isGroupAddress(mac), 'mac', 'must be a unicast address (bit 0 of the first byte clear)');
    this.queuePairs = pairs;
    this.mtu = mtu;
    this.hasControlQueue = control;
    this.defaultMac = mac;
    this.macBytes = Uint8Array.from(mac);
    this.filter = new RxFilter(mac, options.rxFilter ?? control);
    this.link = options.linkUp ?? true;

    let features = ringFeatures(options) | featureBits(VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU);
    if (options.mergeableRxBuffers ?? true) features |= featureBit(VIRTIO_NET_F_MRG_RXBUF);
    if (options.status ?? true) features |= featureBit(VIRTIO_NET_F_STATUS);
    // Offloads only as the back-end honours them (and the options allow).
    const want = (o: NetOffloads, key: keyof NetOffloads) => o[key] && (options.offloads?.[key] ?? true);
    const tx = backend.offloads;
    if (want(tx, 'csum')) {
      features |= featureBit(VIRTIO_NET_F_CSUM);
      if (want(tx, 'tso4')) features |= featureBit(VIRTIO_NET_F_HOST_TSO4);
      if (want(tx, 'tso6')) features |= featureBit(VIRTIO_NET_F_HOST_TSO6);
      if (want(tx, 'ufo')) features |= featureBit(VIRTIO_NET_F_HOST_UFO);
      if (want(tx, 'ecn') && (want(tx, 'tso4') || want(tx, 'tso6'))) features |= featureBit(VIRTIO_NET_F_HOST_ECN);
    }
    const rx = backend.rxOffloads ?? backend.offloads;
    if (want(rx, 'csum')) {
      features |= featureBit(VIRTIO_NET_F_GUEST_CSUM);
      if (want(rx, 'tso4')) features |= featureBit(VIRTIO_NET_F_GUEST_TSO4);
      if (want(rx, 'tso6')) features |= featureBit(VIRTIO_NET_F_GUEST_TSO6);
      if (want(rx, 'ufo')) features |= featureBit(VIRTIO_NET_F_GUEST_UFO);
      if (want(rx, 'ecn') && (want(rx, 'tso4') || want(rx, 'tso6'))) features |= featureBit(VIRTIO_NET_F_GUEST_ECN);
    }
    if (control) {
      features |= featureBits(VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_MAC_ADDR);
      if ((features & GUEST_OFFLOAD_MASK) !== 0n) features |= featureBit(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
    }
    // Without a control queue the front-end answers ANNOUNCE_ACK; offering the bit tells QEMU's
    // vhost-user-net that the guest announces itself (no RARP sent out of band).
    if (options.guestAnnounce ?? true) features |= featureBit(VIRTIO_NET_F_GUEST_ANNOUNCE);
    // MQ needs a back-end with that many ports; without a control queue the front-end (QEMU's
    // vhost-user-net) runs VQ_PAIRS_SET itself and enables the rings of the pairs in use.
    if (pairs > 1 && backend.maxQueuePairs > 1) features |= featureBit(VIRTIO_NET_F_MQ);
    this.deviceFeatures = features;

    const names: string[] = [];
    for (let i = 0; i < pairs; i++) names.push(`rx${i}`, `tx${i}`);
    if (control) names.push('ctrl');
    this.queueMaxSizes = names.map(() => queueSize);
    this.metrics = new NetMetrics(names);
    this.attached = Array.from({ length: pairs }, () => false);
    this.receivers = Array.from({ length: pairs }, (_, i) => new PairReceiver(() => this.metrics.queues[2 * i]!.drops++));
  }

  get configGeneration(): number {
    return this.generation;
  }

  /** The link state (VIRTIO_NET_S_LINK_UP). */
  get linkUp(): boolean {
    return this.link;
  }

  /** The current station address, `aa:bb:cc:dd:ee:ff` (changes with MAC_ADDR_SET). */
  get mac(): string {
    return formatMac(this.macBytes);
  }

  /** Queue pairs in use now (VQ_PAIRS_SET; 1 after reset). */
  get activeQueuePairs(): number {
    return this.activePairs;
  }

  /** A copy of the receive filter (modes and MAC tables) as the driver set it. */
  get rxFilter(): ReturnType<RxFilter['save']> {
    return this.filter.save();
  }

  /** Receive buffers held for frames that did not fit yet, over all receive queues. */
  get heldRxBuffers(): number {
    return this.rxQueues.reduce((n, q) => n + (q?.heldBuffers ?? 0), 0);
  }

  /**
   * Gives back the receive buffers held for a frame that did not fit yet, empty (used length 0:
   * Linux's virtio_net counts them as rx_length_errors and posts new ones), so that a stop that
   * waits for every buffer in flight — vhost-user GET_VRING_BASE, a snapshot — need not wait for
   * the guest to post more. The waiting frame stays with the back-end. Returns how many.
   */
  releaseHeldRxBuffers(): number {
    let released = 0;
    for (const q of this.rxQueues) released += q?.release() ?? 0;
    this.metrics.releasedRxBuffers += released;
    return released;
  }

  /** VirtioDevice.quiesce: a transport stopping the rings gets the held receive buffers back. */
  quiesce(): void {
    this.releaseHeldRxBuffers();
  }

  /** §5.1.4: mac, status, max_virtqueue_pairs, mtu (little-endian). */
  readConfig(offset: number, data: Uint8Array): void {
    const c = this.configBytes;
    c.set(this.macBytes, 0);
    // Without VIRTIO_NET_F_STATUS the field does not exist; it then reads as "link up" (the
    // driver "SHOULD assume the link is active").
    const statusOffered = hasFeature(this.deviceFeatures, VIRTIO_NET_F_STATUS);
    const status = (this.link || !statusOffered ? VIRTIO_NET_S_LINK_UP : 0) | (this.announcePending ? VIRTIO_NET_S_ANNOUNCE : 0);
    c[6] = status & 0xff;
    c[7] = status >>> 8;
    c[8] = this.queuePairs & 0xff;
    c[9] = this.queuePairs >>> 8;
    c[10] = this.mtu & 0xff;
    c[11] = this.mtu >>> 8;
    data.set(c.subarray(offset, offset + data.length));
  }

  /** §5.1.4.2: "The driver MUST NOT write to any of the device configuration fields": ignored. */
  writeConfig(): void {
    this.metrics.configWrites++;
  }

  /** §5.1.3.1: a feature whose requirement is missing is refused (FEATURES_OK stays clear). */
  validateFeatures(features: Features): boolean {
    for (const [feature, requires] of DEPENDENCIES) {
      if (!hasFeature(features, feature)) continue;
      // Data-plane-only (vhost-user-net): the front-end owns the control queue behind MQ and
      // GUEST_ANNOUNCE.
      if ((feature === VIRTIO_NET_F_MQ || feature === VIRTIO_NET_F_GUEST_ANNOUNCE) && !this.hasControlQueue) continue;
      if (!requires.some((r) => hasFeature(features, r))) return false;
    }
    return true;
  }

  activate(context: ActivationContext): void {
    this.stopQueues();
    this.context = context;
    const f = context.features;
    this.negotiated = f;
    // §5.1.6.1: the header has num_buffers with VERSION_1 (or, for a legacy front-end, MRG_RXBUF).
    const hdrSize = hasFeature(f, VIRTIO_F_VERSION_1) || hasFeature(f, VIRTIO_NET_F_MRG_RXBUF) ? 12 : 10;
    // §5.1.2: N = max_virtqueue_pairs with MQ, else 1; the control queue is queue 2N.
    const pairs = hasFeature(f, VIRTIO_NET_F_MQ) ? this.queuePairs : 1;
    // Frame limits follow the negotiated MTU; without our config space (vhost-user-net) QEMU's
    // host_mtu is what the guest saw, so only the back-end's MTU bounds frames.
    const negotiatedMtu = hasFeature(f, VIRTIO_NET_F_MTU) && this.hasControlQueue ? this.mtu : Math.min(this.backend.mtu, 65535);
    const txOffloads: TxOffloads = {
      csum: hasFeature(f, VIRTIO_NET_F_CSUM),
      tso4: hasFeature(f, VIRTIO_NET_F_HOST_TSO4),
      tso6: hasFeature(f, VIRTIO_NET_F_HOST_TSO6),
      ufo: hasFeature(f, VIRTIO_NET_F_HOST_UFO),
      ecn: hasFeature(f, VIRTIO_NET_F_HOST_ECN),
    };
    let guestOffloads = this.offloadsOf(this.guestOffloadBits);
    const guestOffloadsNow = () => guestOffloads;
    this.guestOffloadChanged = () => {
      guestOffloads = this.offloadsOf(this.guestOffloadBits);
    };
    // Upon feature negotiation every negotiated offload is enabled (§5.1.6.5.6.1), unless a
    // restored snapshot says what the driver had set.
    if (!this.restoredOffloads) this.guestOffloadBits = f & GUEST_OFFLOAD_MASK;
    this.restoredOffloads = false;
    this.guestOffloadChanged();
    const linkUp = () => this.link;
    this.rxQueues = [];
    this.txQueues = [];
    for (let i = 0; i < pairs; i++) {
      const rxQueue = context.queues[2 * i] ?? null;
      const txQueue = context.queues[2 * i + 1] ?? null;
      const receiver = this.receivers[i]!;
      receiver.rx =
        rxQueue === null
          ? undefined
          : new RxQueue(this.runner(2 * i, rxQueue, context), {
              memory: context.memory,
              metrics: this.metrics,
              hdrSize,
              mergeable: hasFeature(f, VIRTIO_NET_F_MRG_RXBUF),
              filter: this.filter,
              maxFrame: negotiatedMtu + ETH_HLEN,
              guestOffloads: guestOffloadsNow,
              linkUp,
              resume: () => this.backend.port(i).resumeReceive(),
            });
      receiver.tx =
        txQueue === null
          ? undefined
          : new TxQueue(this.runner(2 * i + 1, txQueue, context, () => receiver.tx?.process()), this.backend.port(i), {
              memory: context.memory,
              metrics: this.metrics,
              hdrSize,
              offloads: txOffloads,
              maxFrame: negotiatedMtu + ETH_HLEN + VLAN_HLEN,
              linkUp,
            });
      this.rxQueues.push(receiver.rx);
      this.txQueues.push(receiver.tx);
    }
    this.controlIndex = -1;
    this.control = undefined;
    if (this.hasControlQueue && hasFeature(f, VIRTIO_NET_F_CTRL_VQ)) {
      this.controlIndex = 2 * pairs;
      const queue = context.queues[this.controlIndex] ?? null;
      if (queue !== null) {
        // H17: a guest keeping the control queue full yields the thread; the drain resumes from a timer.
        this.control = new ControlQueue(this.runner(this.controlIndex, queue, context, () => this.control?.resume()), {
          memory: context.memory,
          metrics: this.metrics,
          features: f,
          filter: this.filter,
          setMac: (mac) => this.setMac(mac),
          setQueuePairs: (n) => this.setQueuePairs(n, pairs),
          setGuestOffloads: (bits) => this.setGuestOffloadBits(bits),
          announceAck: () => this.announceAck(),
        });
      }
    }
    this.backend.setGuestOffloads(guestOffloads);
    if (!this.hasControlQueue) this.activePairs = pairs;
    this.activePairs = Math.min(this.activePairs, pairs);
    this.updatePorts();
  }

  queueNotify(index: number): void {
    if (index === this.controlIndex) {
      this.control?.notify();
      return;
    }
    const pair = index >>> 1;
    // §5.1.6.5.5: queues of pairs beyond VQ_PAIRS_SET are not used (their buffers stay available).
    if (pair >= this.activePairs) return;
    if ((index & 1) === 0) this.rxQueues[pair]?.notify();
    else this.txQueues[pair]?.notify();
  }

  reset(): void {
    this.stopQueues();
    this.context = undefined;
    this.negotiated = 0n;
    // §5.1.6.5.5: "After initialization of reset, the device MUST queue packets only on receiveq1";
    // §5.1.6.5.2: "The device MUST have an empty MAC filtering table on reset".
    this.activePairs = 1;
    this.macBytes.set(this.defaultMac);
    this.filter.reset(this.defaultMac);
    this.announcePending = false;
    this.guestOffloadBits = 0n;
    this.restoredOffloads = false;
  }

  /**
   * Sets the link state. With VIRTIO_NET_F_STATUS negotiated the driver gets a configuration
   * change notification (§5.1.4: status). While the link is down, received frames are dropped
   * and transmitted ones returned unsent.
   */
  setLinkUp(up: boolean): void {
    if (this.link === up) return;
    this.link = up;
    this.generation++;
    if (this.context !== undefined && hasFeature(this.negotiated, VIRTIO_NET_F_STATUS)) {
      this.metrics.configChanges++;
      this.context.interrupt.signalConfig();
    }
    // Frames that waited for the back-end may now be returned as dropped.
    if (!up) for (const tx of this.txQueues) tx?.process();
  }

  /**
   * Asks the driver to announce itself (after a migration): sets VIRTIO_NET_S_ANNOUNCE and sends
   * a configuration change notification (§5.1.6.5.4). False (nothing done) unless
   * VIRTIO_NET_F_GUEST_ANNOUNCE and VIRTIO_NET_F_STATUS were negotiated.
   */
  announce(): boolean {
    const context = this.context;
    if (context === undefined || !hasFeature(this.negotiated, VIRTIO_NET_F_GUEST_ANNOUNCE) || !hasFeature(this.negotiated, VIRTIO_NET_F_STATUS)) return false;
    this.announcePending = true;
    this.generation++;
    this.metrics.configChanges++;
    context.interrupt.signalConfig();
    return true;
  }

  saveState(): NetDeviceState {
    return {
      version: 1,
      mac: formatMac(this.macBytes),
      linkUp: this.link,
      announce: this.announcePending,
      queuePairs: this.activePairs,
      guestOffloads: Number(this.guestOffloadBits),
      filter: this.filter.save(),
    };
  }

  /** Restores a {@link saveState} snapshot (validated: it is untrusted input, H16). */
  restoreState(state: unknown): void {
    const s = restoreNetState(state, { maxQueuePairs: this.queuePairs });
    if ((BigInt(s.guestOffloads) & ~GUEST_OFFLOAD_MASK) !== 0n) {
      throw new BackendError('INVALID_STATE', 'net state: guestOffloads has bits that are not GUEST_* offloads', { device: 'net', field: 'guestOffloads' });
    }
    this.macBytes.set(parseMac(s.mac));
    this.filter.restore(s.filter);
    this.filter.mac.set(this.macBytes);
    this.link = s.linkUp;
    this.announcePending = s.announce;
    this.activePairs = s.queuePairs;
    this.guestOffloadBits = BigInt(s.guestOffloads);
    this.restoredOffloads = true;
    this.generation++;
    if (this.context !== undefined) {
      this.guestOffloadChanged();
      this.backend.setGuestOffloads(this.offloadsOf(this.guestOffloadBits));
      this.updatePorts();
    }
  }

  private restoredOffloads = false;
  private guestOffloadChanged: () => void = () => undefined;

  private offloadsOf(bits: Features): NetOffloads {
    const on = (bit: number) => hasFeature(bits, bit);
    return {
      csum: on(VIRTIO_NET_F_GUEST_CSUM),
      tso4: on(VIRTIO_NET_F_GUEST_TSO4),
      tso6: on(VIRTIO_NET_F_GUEST_TSO6),
      ufo: on(VIRTIO_NET_F_GUEST_UFO),
      ecn: on(VIRTIO_NET_F_GUEST_ECN),
    };
  }

  private runner(index: number, queue: DeviceQueue, context: ActivationContext, resume?: () => void): QueueRunner {
    const metrics = this.metrics;
    return new QueueRunner(
      index,
      queue,
      context,
      {
        ringError: () => metrics.ringErrors++,
        needsReset: () => metrics.needsReset++,
        interrupt: () => metrics.queues[index]!.interrupts++,
      },
      resume,
    );
  }

  /** Attaches the ports of the pairs in use, detaches the others. */
  private updatePorts(): void {
    for (let i = 0; i < this.queuePairs; i++) {
      const receiver = this.receivers[i]!;
      const use = this.context !== undefined && i < this.activePairs && (receiver.rx !== undefined || receiver.tx !== undefined) && i < this.rxQueues.length;
      if (use && !this.attached[i]) {
        this.backend.port(i).attach(receiver);
        this.attached[i] = true;
      } else if (!use && this.attached[i]) {
        this.backend.port(i).detach();
        this.attached[i] = false;
      }
    }
    // Transmissions queued on a pair that just became active.
    for (let i = 0; i < this.activePairs; i++) this.txQueues[i]?.process();
  }

  private stopQueues(): void {
    for (let i = 0; i < this.queuePairs; i++) {
      if (this.attached[i]) {
        this.backend.port(i).detach();
        this.attached[i] = false;
      }
      const receiver = this.receivers[i]!;
      receiver.rx?.stop();
      receiver.tx?.stop();
      receiver.rx = undefined;
      receiver.tx = undefined;
    }
    this.control?.stop();
    this.control = undefined;
    this.controlIndex = -1;
    this.rxQueues = [];
    this.txQueues = [];
  }

  private setMac(mac: Uint8Array): void {
    // §5.1.6.5.2: config `mac` is updated before the command is used.
    this.macBytes.set(mac);
    this.filter.mac.set(mac);
    this.generation++;
  }

  /** §5.1.6.5.5: 1..max_virtqueue_pairs; switched before the command's buffer is used. */
  private setQueuePairs(n: number, max: number): boolean {
    if (n < 1 || n > max) return false;
    this.activePairs = n;
    this.updatePorts();
    return true;
  }

  /** §5.1.6.5.6: only negotiated GUEST_* offloads may be enabled. */
  private setGuestOffloadBits(bits: bigint): boolean {
    if ((bits & ~(this.negotiated & GUEST_OFFLOAD_MASK)) !== 0n) return false;
    this.guestOffloadBits = bits;
    this.guestOffloadChanged();
    this.backend.setGuestOffloads(this.offloadsOf(bits));
    return true;
  }

  /** §5.1.6.5.4: "MUST clear the VIRTIO_NET_S_ANNOUNCE bit ... before marking the buffer as used". */
  private announceAck(): void {
    if (this.announcePending) this.generation++;
    this.announcePending = false;
  }
}

function check(condition: boolean, field: string, message: string): asserts condition {
  if (!condition) throw new BackendError('INVALID_OPTION', `net option ${field} ${message}`, { device: 'net', field });
}
