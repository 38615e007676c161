// A scriptable virtio-net device for the driver's tests (not exported): it plays the device side
// of the rings directly (@virtio-ts/ring's DeviceQueue through the transport), so tests can hand
// the driver exact, and hostile, completions. The real device is @virtio-ts/backends' NetDevice.
import {
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  decodeNetHdr,
  encodeNetHdr,
  featureBits,
  hasFeature,
  plainNetHdr,
  type ActivationContext,
  type Features,
  type VirtioDevice,
  type VirtioNetHdr,
} from '@virtio-ts/device';
import type { DescriptorChain, SplitQueueState } from '@virtio-ts/ring';
import { deferMicrotask } from '../web-apis.js';
import {
  VIRTIO_ID_NET,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_S_LINK_UP,
} from './constants.js';

export interface ScriptedNetDeviceOptions {
  readonly mac?: readonly number[];
  /** Offers VIRTIO_NET_F_MTU with this value. */
  readonly mtu?: number;
  /** Offers MQ with this max_virtqueue_pairs (raw, may be invalid) when > 1 or `offerMq`. */
  readonly maxPairs?: number;
  /** Queue pairs the device really has (defaults to maxPairs clamped to 1..8). */
  readonly queuePairs?: number;
  /** Replaces the offered feature set entirely. */
  readonly features?: Features;
  readonly packed?: boolean;
  readonly queueSize?: number;
}

/** A transmitted packet as the device saw it. */
export interface SeenTransmit {
  readonly queue: number;
  readonly hdr: VirtioNetHdr;
  readonly frame: Uint8Array;
  readonly segments: number;
}

/** A control command as the device saw it. */
export interface SeenCommand {
  readonly commandClass: number;
  readonly command: number;
  readonly data: Uint8Array;
}

export class ScriptedNetDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 12;
  configGeneration = 0;
  context: ActivationContext | undefined;
  readonly transmitted: SeenTransmit[] = [];
  readonly commands: SeenCommand[] = [];
  /** The ack the controlq answers with (0 = VIRTIO_NET_OK). */
  ackStatus = 0;
  /** Used length reported for control commands (1 is right: the ack byte). */
  controlUsedLength = 1;
  /** Keep transmit chains instead of completing them (see `completeTransmits`). */
  holdTransmits = false;
  /** Used length reported for transmit chains (0 is right). */
  transmitUsedLength = 0;
  /** Called for each transmitted frame (e.g. to deliver it to a peer). */
  onTransmit: ((frame: Uint8Array) => void) | undefined;
  private readonly config = new DataView(new ArrayBuffer(12));
  private readonly pairs: number;
  private readonly held = new Map<number, DescriptorChain[]>();
  private readonly heldTransmits: { queue: number; chain: DescriptorChain }[] = [];

  constructor(options: ScriptedNetDeviceOptions = {}) {
    const maxPairs = options.maxPairs ?? 1;
    this.pairs = options.queuePairs ?? Math.max(1, Math.min(8, maxPairs));
    this.deviceFeatures =
      options.features ??
      featureBits(
        VIRTIO_F_VERSION_1,
        VIRTIO_RING_F_EVENT_IDX,
        VIRTIO_RING_F_INDIRECT_DESC,
        VIRTIO_NET_F_MAC,
        VIRTIO_NET_F_STATUS,
        VIRTIO_NET_F_MRG_RXBUF,
        VIRTIO_NET_F_CTRL_VQ,
        VIRTIO_NET_F_CTRL_RX,
        VIRTIO_NET_F_CTRL_MAC_ADDR,
        ...(maxPairs !== 1 ? [VIRTIO_NET_F_MQ] : []),
        ...(options.mtu !== undefined ? [VIRTIO_NET_F_MTU] : []),
        ...(options.packed === true ? [VIRTIO_F_RING_PACKED] : []),
      );
    this.queueMaxSizes = Array.from({ length: 2 * this.pairs + 1 }, () => options.queueSize ?? 256);
    (options.mac ?? [0x52, 0x54, 0, 0x12, 0x34, 0x56]).forEach((b, i) => this.config.setUint8(i, b));
    this.config.setUint16(6, VIRTIO_NET_S_LINK_UP, true);
    this.config.setUint16(8, maxPairs, true);
    this.config.setUint16(10, options.mtu ?? 0, true);
  }

  get negotiated(): Features {
    return this.context?.features ?? 0n;
  }

  /** Called after each configuration read (to change the config in the middle of the driver's read). */
  configReadHook: ((offset: number) => void) | undefined;

  /** Changes mac and mtu at once and bumps the generation, without a notification. */
  rewriteConfig(mac: readonly number[], mtu: number): void {
    mac.forEach((b, i) => this.config.setUint8(i, b));
    this.config.setUint16(10, mtu, true);
    this.configGeneration++;
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(new Uint8Array(this.config.buffer, offset, data.length));
    this.configReadHook?.(offset);
  }

  writeConfig(): void {}

  activate(context: ActivationContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
    this.held.clear();
    this.heldTransmits.length = 0;
  }

  setLink(up: boolean): void {
    this.config.setUint16(6, up ? VIRTIO_NET_S_LINK_UP : 0, true);
    this.configGeneration++;
    this.context?.interrupt.signalConfig();
  }

  queueNotify(index: number): void {
    const context = this.context;
    const queue = context?.queues[index];
    if (context === undefined || queue === undefined || queue === null) return;
    if (index === 2 * this.pairs || (index === 2 && !hasFeature(this.negotiated, VIRTIO_NET_F_MQ))) {
      for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
        const bytes = this.readChain(chain);
        this.commands.push({ commandClass: bytes[0]!, command: bytes[1]!, data: bytes.slice(2) });
        context.memory.write(chain.writable[0]!.address, Uint8Array.of(this.ackStatus));
        this.pushUsed(index, chain, this.controlUsedLength);
      }
      if (queue.needsNotification()) context.interrupt.signalQueue(index);
      return;
    }
    if (index % 2 === 1) {
      for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
        const bytes = this.readChain(chain);
        const frame = bytes.slice(VIRTIO_NET_HDR_SIZE);
        this.transmitted.push({ queue: index, hdr: decodeNetHdr(bytes), frame, segments: chain.readable.length });
        if (this.holdTransmits) this.heldTransmits.push({ queue: index, chain });
        else this.pushUsed(index, chain, this.transmitUsedLength);
        const peer = this.onTransmit;
        if (peer !== undefined) deferMicrotask(() => peer(frame));
      }
      if (queue.needsNotification()) context.interrupt.signalQueue(index);
    }
  }

  /** Completes the transmit chains kept while `holdTransmits` was set. */
  completeTransmits(): void {
    const context = this.context!;
    const queues = new Set<number>();
    for (const { queue, chain } of this.heldTransmits.splice(0)) {
      this.pushUsed(queue, chain, this.transmitUsedLength);
      queues.add(queue);
    }
    for (const index of queues) if (context.queues[index]!.needsNotification()) context.interrupt.signalQueue(index);
  }

  /**
   * Delivers a frame into receiveq `queue`, as a device would (§5.1.6.4): with MRG_RXBUF over as
   * many buffers as needed with num_buffers set, otherwise in one buffer. Returns false when the
   * driver has not posted enough buffers (nothing is delivered then).
   */
  deliver(frame: Uint8Array, options: { queue?: number; hdr?: Partial<VirtioNetHdr> } = {}): boolean {
    const index = 2 * (options.queue ?? 0);
    const bytes = new Uint8Array(VIRTIO_NET_HDR_SIZE + frame.length);
    bytes.set(frame, VIRTIO_NET_HDR_SIZE);
    const mergeable = hasFeature(this.negotiated, VIRTIO_NET_F_MRG_RXBUF);
    const chains: DescriptorChain[] = [];
    let room = 0;
    while (room < bytes.length && (mergeable || chains.length === 0)) {
      const chain = this.take(index);
      if (chain === undefined) break;
      chains.push(chain);
      room += chain.writableLength;
    }
    if (room < bytes.length) {
      this.held.set(index, [...chains, ...(this.held.get(index) ?? [])]);
      return false;
    }
    encodeNetHdr({ ...plainNetHdr(), numBuffers: chains.length, ...options.hdr }, bytes);
    const writes: { bytes: Uint8Array; usedLength?: number }[] = [];
    let at = 0;
    for (const chain of chains) {
      const n = Math.min(chain.writableLength, bytes.length - at);
      writes.push({ bytes: bytes.subarray(at, at + n) });
      at += n;
    }
    this.complete(index, chains, writes);
    return true;
  }

  /**
   * Completes receive buffers with arbitrary contents and used lengths (hostile device). Returns
   * the number of buffers used (fewer when the driver posted fewer).
   */
  deliverRaw(queue: number, writes: readonly { bytes: Uint8Array; usedLength?: number }[]): number {
    const index = 2 * queue;
    const chains: DescriptorChain[] = [];
    for (let i = 0; i < writes.length; i++) {
      const chain = this.take(index);
      if (chain === undefined) break;
      chains.push(chain);
    }
    this.complete(index, chains, writes.slice(0, chains.length));
    return chains.length;
  }

  /** Receive buffers the driver has made available (popped or still in the ring). */
  availableReceiveBuffers(queue = 0): number {
    const index = 2 * queue;
    const device = this.context?.queues[index];
    if (device === undefined || device === null) return 0;
    const list = this.held.get(index) ?? [];
    for (let chain = device.pop(); chain !== null; chain = device.pop()) list.push(chain);
    this.held.set(index, list);
    return list.length;
  }

  private take(index: number): DescriptorChain | undefined {
    const list = this.held.get(index);
    if (list !== undefined && list.length > 0) return list.shift();
    return this.context?.queues[index]?.pop() ?? undefined;
  }

  private complete(index: number, chains: readonly DescriptorChain[], writes: readonly { bytes: Uint8Array; usedLength?: number }[]): void {
    const context = this.context!;
    const queue = context.queues[index]!;
    chains.forEach((chain, i) => {
      const write = writes[i]!;
      let at = 0;
      for (const segment of chain.writable) {
        const n = Math.min(segment.length, write.bytes.length - at);
        if (n <= 0) break;
        context.memory.write(segment.address, write.bytes.subarray(at, at + n));
        at += n;
      }
      this.pushUsed(index, chain, write.usedLength ?? at);
    });
    if (queue.needsNotification()) context.interrupt.signalQueue(index);
  }

  /**
   * pushUsed, except that a length beyond the chain's writable length (which the device side of
   * the ring refuses) is written into the split used ring behind its back: a hostile device.
   */
  private pushUsed(index: number, chain: DescriptorChain, length: number): void {
    const queue = this.context!.queues[index]!;
    queue.pushUsed(chain.head, Math.min(length, chain.writableLength));
    if (length <= chain.writableLength) return;
    const state = queue.saveState();
    if (state.layout !== 'split') throw new Error('hostile used lengths are scripted on split rings only');
    const { ring, nextUsed }: SplitQueueState = state;
    const slot = (nextUsed - 1) & (ring.size - 1);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, length >>> 0, true);
    this.context!.memory.write(ring.usedRing + 4 + 8 * slot + 4, bytes);
  }

  private readChain(chain: DescriptorChain): Uint8Array {
    const bytes = new Uint8Array(chain.readableLength);
    let at = 0;
    for (const segment of chain.readable) {
      this.context!.memory.read(segment.address, bytes.subarray(at, at + segment.length));
      at += segment.length;
    }
    return bytes;
  }
}
