import { EventFd, closeFd } from '@virtio-ts/host';
import {
  VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET as DEVICE_NEEDS_RESET, featureBit, hasFeature, queueFeaturesOf, queueLayoutOf, type Features, type Interrupt, type VirtioDevice,
} from '@virtio-ts/device';
import { PackedDeviceQueue, SplitDeviceQueue, type DeviceQueue } from '@virtio-ts/ring';
import {
  VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_PROTOCOL_F_CONFIG, VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, VHOST_USER_PROTOCOL_F_MQ,
  VHOST_USER_PROTOCOL_F_REPLY_ACK, VHOST_USER_PROTOCOL_F_RESET_DEVICE, VHOST_USER_PROTOCOL_F_STATUS, type VhostUserRequestName,
} from '../constants.js';
import { VhostUserError } from '../errors.js';
import { encodeReply, type DecodedRequest, type EncodedMessage, type VhostUserMessage } from '../message.js';
import { InflightBuffer, InflightDeviceQueue, type InflightCounter } from './inflight.js';
import { MemoryTable } from './memory-table.js';
import { Vring } from './vring.js';

/** Protocol features this back-end implements. */
export const BACKEND_PROTOCOL_FEATURES =
  featureBit(VHOST_USER_PROTOCOL_F_MQ) |
  featureBit(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
  featureBit(VHOST_USER_PROTOCOL_F_CONFIG) |
  featureBit(VHOST_USER_PROTOCOL_F_RESET_DEVICE) |
  featureBit(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) |
  featureBit(VHOST_USER_PROTOCOL_F_STATUS) |
  featureBit(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);

const PROTOCOL_FEATURES_BIT = featureBit(VHOST_USER_F_PROTOCOL_FEATURES);

export interface BackendOptions {
  readonly device: VirtioDevice;
  /** Memory slots offered with CONFIGURE_MEM_SLOTS (default 32). */
  readonly maxMemSlots?: number;
  /** How long GET_VRING_BASE and memory-table changes wait for in-flight requests (default 30 s). */
  readonly drainTimeoutMs?: number;
  readonly log?: (message: string) => void;
  /** Called when a vring's kick fd changes, so the event loop can watch it. */
  readonly onKickFd?: (index: number, kick: EventFd | null) => void;
}

/**
 * One vhost-user session: the back-end side of QEMU's docs/interop/vhost-user.rst over a
 * {@link VirtioDevice}. It owns the guest memory mappings, the vrings and their eventfds, and
 * drives the device: activation when the front-end sets DRIVER_OK (or at the first kick, for
 * front-ends without VHOST_USER_PROTOCOL_F_STATUS), `queueNotify` per kick, reset when rings stop.
 *
 * Threading-free: the event loop ({@link serveConnection}) feeds it decoded requests and kicks.
 * Before memory is unmapped (SET_MEM_TABLE, REM_MEM_REG, connection end) or a ring is stopped,
 * in-flight requests are drained, so no request touches unmapped memory (HOSTILE-INPUTS H8).
 */
export class VhostUserBackend {
  readonly device: VirtioDevice;
  readonly memoryTable: MemoryTable;
  private readonly vrings: Vring[];
  private readonly log: (message: string) => void;
  private readonly drainTimeoutMs: number;
  private readonly onKickFd: (index: number, kick: EventFd | null) => void;
  private ackedFeatures: Features = 0n;
  private protocolFeatures: Features = 0n;
  private owner = false;
  private status = 0;
  private active = false;
  private closed = false;
  /** The inflight buffer (GET/SET_INFLIGHT_FD); split rings record their in-flight heads in it. */
  private inflight: InflightBuffer | null = null;
  private readonly inflightCounter: InflightCounter = { next: 1 };

  constructor(options: BackendOptions) {
    this.device = options.device;
    this.memoryTable = new MemoryTable(options.maxMemSlots ?? 32);
    this.vrings = options.device.queueMaxSizes.map((max, i) => new Vring(i, max));
    this.log = options.log ?? (() => undefined);
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.onKickFd = options.onKickFd ?? (() => undefined);
  }

  /** Features offered by GET_FEATURES: the device's, plus VHOST_USER_F_PROTOCOL_FEATURES. */
  get offeredFeatures(): Features {
    return this.device.deviceFeatures | PROTOCOL_FEATURES_BIT;
  }

  get deviceActive(): boolean {
    return this.active;
  }

  /** The vring for `index` (H1: out-of-range indices are a protocol error, compared unsigned). */
  vring(index: number, request: VhostUserRequestName): Vring {
    const ring = index >>> 0 < this.vrings.length ? this.vrings[index] : undefined;
    if (!ring) throw new VhostUserError('BAD_PAYLOAD', `vring ${index} does not exist (the device has ${this.vrings.length})`, { request, queue: index });
    return ring;
  }

  /** Kicks served per vring since the connection began. */
  get kickCounts(): number[] {
    return this.vrings.map((r) => r.kicks);
  }

  get vringCount(): number {
    return this.vrings.length;
  }

  /**
   * Handles one request and returns the reply to send, if any. Throws VhostUserError for a
   * request that must close the connection.
   */
  async handle(request: DecodedRequest): Promise<EncodedMessage | null> {
    const { message } = request;
    const reply = await this.dispatch(message);
    if (reply !== null) return reply;
    // REPLY_ACK: a u64 0 for success on requests that have no reply of their own.
    if (request.needReply && hasFeature(this.protocolFeatures, VHOST_USER_PROTOCOL_F_REPLY_ACK)) {
      return encodeReply(message.type, { kind: 'u64', value: 0n });
    }
    return null;
  }

  private async dispatch(message: VhostUserMessage): Promise<EncodedMessage | null> {
    switch (message.type) {
      case 'GET_FEATURES':
        return encodeReply(message.type, { kind: 'u64', value: this.offeredFeatures });
      case 'SET_FEATURES': {
        const unknown = message.value & ~this.offeredFeatures;
        if (unknown !== 0n) throw new VhostUserError('PROTOCOL_VIOLATION', `front-end acked features it was not offered: 0x${unknown.toString(16)}`, { request: message.type });
        if (this.active && (message.value & ~PROTOCOL_FEATURES_BIT) !== this.ackedFeatures) {
          throw new VhostUserError('PROTOCOL_VIOLATION', 'features changed while the device is running', { request: message.type });
        }
        this.ackedFeatures = message.value & ~PROTOCOL_FEATURES_BIT;
        this.protocolFeaturesNegotiated = (message.value & PROTOCOL_FEATURES_BIT) !== 0n;
        return null;
      }
      case 'GET_PROTOCOL_FEATURES':
        return encodeReply(message.type, { kind: 'u64', value: BACKEND_PROTOCOL_FEATURES });
      case 'SET_PROTOCOL_FEATURES': {
        const unknown = message.value & ~BACKEND_PROTOCOL_FEATURES;
        if (unknown !== 0n) throw new VhostUserError('PROTOCOL_VIOLATION', `protocol features not offered: 0x${unknown.toString(16)}`, { request: message.type });
        this.protocolFeatures = message.value;
        return null;
      }
      case 'SET_OWNER':
        this.owner = true;
        return null;
      case 'RESET_OWNER':
        // Deprecated; the spec recommends ignoring it or disabling rings. We stop the rings.
        await this.stopAll();
        return null;
      case 'RESET_DEVICE':
        await this.stopAll();
        for (const ring of this.vrings) this.clearRing(ring);
        this.status = 0;
        return null;
      case 'GET_QUEUE_NUM':
        return encodeReply(message.type, { kind: 'u64', value: BigInt(this.vrings.length) });
      case 'GET_MAX_MEM_SLOTS':
        return encodeReply(message.type, { kind: 'u64', value: BigInt(this.memoryTable.maxRegions) });
      case 'SET_MEM_TABLE':
        await this.drainAll('SET_MEM_TABLE');
        this.memoryTable.replace(message.regions, message.fds);
        this.rebuildQueues();
        return null;
      case 'ADD_MEM_REG':
        this.requireProtocol(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, message.type, [message.fd]);
        await this.drainAll('ADD_MEM_REG');
        if (this.memoryTable.add(message.region, message.fd)) this.rebuildQueues();
        return null;
      case 'REM_MEM_REG':
        this.requireProtocol(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, message.type);
        await this.drainAll('REM_MEM_REG');
        this.memoryTable.remove(message.region);
        this.rebuildQueues();
        return null;
      case 'SET_VRING_NUM': {
        const ring = this.vring(message.index, message.type);
        const packed = queueLayoutOf(this.ackedFeatures) === 'packed';
        if (message.num < 1 || message.num > ring.maxSize || (!packed && (message.num & (message.num - 1)) !== 0)) {
          throw new VhostUserError('BAD_PAYLOAD', `queue size ${message.num} for vring ${message.index} (1..${ring.maxSize}${packed ? '' : ', a power of two'})`, { request: message.type, queue: message.index });
        }
        ring.num = message.num;
        return null;
      }
      case 'SET_VRING_ADDR': {
        const ring = this.vring(message.index, message.type);
        ring.addresses = { flags: message.flags, desc: message.descUserAddress, used: message.usedUserAddress, avail: message.availUserAddress, log: message.logGuestAddress };
        if (ring.started) this.startRing(ring);
        return null;
      }
      case 'SET_VRING_BASE': {
        const ring = this.vring(message.index, message.type);
        if (ring.started && ring.queue && ring.queue.inFlight > 0) throw new VhostUserError('PROTOCOL_VIOLATION', 'SET_VRING_BASE on a running ring', { request: message.type, queue: message.index });
        ring.base = message.num;
        return null;
      }
      case 'GET_VRING_BASE': {
        const ring = this.vring(message.index, message.type);
        const base = await this.stopRing(ring);
        return encodeReply(message.type, { kind: 'state', index: message.index, num: base });
      }
      case 'SET_VRING_KICK': {
        const ring = this.vring(message.index, message.type);
        ring.kick?.close();
        ring.kick = message.fd === null ? null : EventFd.fromFd(message.fd);
        ring.polling = message.fd === null;
        this.onKickFd(ring.index, ring.kick);
        if (!this.protocolFeaturesNegotiated) ring.enabled = true;
        this.startRing(ring);
        return null;
      }
      case 'SET_VRING_CALL': {
        const ring = this.vring(message.index, message.type);
        ring.call?.close();
        ring.call = message.fd === null ? null : EventFd.fromFd(message.fd);
        return null;
      }
      case 'SET_VRING_ERR': {
        const ring = this.vring(message.index, message.type);
        ring.err?.close();
        ring.err = message.fd === null ? null : EventFd.fromFd(message.fd);
        return null;
      }
      case 'SET_VRING_ENABLE': {
        const ring = this.vring(message.index, message.type);
        if (message.num > 1) throw new VhostUserError('BAD_PAYLOAD', `SET_VRING_ENABLE with ${message.num}`, { request: message.type, queue: message.index });
        const enable = message.num === 1;
        if (enable !== ring.enabled) {
          ring.enabled = enable;
          if (this.active) this.reactivate();
          this.nudgeResubmits(ring);
        }
        return null;
      }
      case 'VRING_KICK':
        this.kick(this.vring(message.index, message.type).index);
        return null;
      case 'GET_CONFIG': {
        this.requireProtocol(VHOST_USER_PROTOCOL_F_CONFIG, message.type);
        if (message.offset + message.size > this.device.configSize) {
          return encodeReply(message.type, { kind: 'config', offset: message.offset, flags: message.flags, data: new Uint8Array(0) });
        }
        const data = new Uint8Array(message.size);
        this.device.readConfig(message.offset, data);
        return encodeReply(message.type, { kind: 'config', offset: message.offset, flags: message.flags, data });
      }
      case 'SET_CONFIG':
        this.requireProtocol(VHOST_USER_PROTOCOL_F_CONFIG, message.type);
        if (message.offset + message.size > this.device.configSize) throw new VhostUserError('BAD_PAYLOAD', 'SET_CONFIG past the device config space', { request: message.type });
        this.device.writeConfig(message.offset, message.payload);
        return null;
      case 'SET_STATUS': {
        this.requireProtocol(VHOST_USER_PROTOCOL_F_STATUS, message.type);
        const was = this.status;
        this.status = message.status;
        if (message.status === 0) {
          await this.stopAll();
        } else if (message.status & DRIVER_OK && !(was & DRIVER_OK)) {
          this.activate();
        }
        return null;
      }
      case 'GET_STATUS':
        this.requireProtocol(VHOST_USER_PROTOCOL_F_STATUS, message.type);
        return encodeReply(message.type, { kind: 'u64', value: BigInt(this.status) });
      case 'GET_INFLIGHT_FD': {
        this.requireProtocol(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, message.type);
        const { numQueues, queueSize } = message;
        // Packed rings are not tracked: a zero-sized reply tells QEMU there is no buffer.
        if (queueLayoutOf(this.ackedFeatures) === 'packed') return encodeReply(message.type, { kind: 'inflight', mmapSize: 0, mmapOffset: 0, numQueues, queueSize, fd: null });
        if (numQueues > this.vrings.length) throw new VhostUserError('BAD_PAYLOAD', `GET_INFLIGHT_FD for ${numQueues} queues (the device has ${this.vrings.length})`, { request: message.type });
        await this.drainAll('GET_INFLIGHT_FD');
        const buffer = InflightBuffer.create(numQueues, queueSize);
        this.replaceInflight(buffer);
        this.log(`vhost-user: inflight buffer created: ${numQueues} queue(s) of ${queueSize} descriptors, ${buffer.size} bytes`);
        return encodeReply(message.type, { kind: 'inflight', mmapSize: buffer.size, mmapOffset: 0, numQueues, queueSize, fd: buffer.fd });
      }
      case 'SET_INFLIGHT_FD': {
        this.requireProtocol(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, message.type, [message.fd]);
        if (message.numQueues > this.vrings.length) {
          safeClose(message.fd);
          throw new VhostUserError('BAD_PAYLOAD', `SET_INFLIGHT_FD for ${message.numQueues} queues (the device has ${this.vrings.length})`, { request: message.type });
        }
        await this.drainAll('SET_INFLIGHT_FD').catch((error: unknown) => {
          safeClose(message.fd);
          throw error;
        });
        const buffer = InflightBuffer.open(message.fd, message.mmapSize, message.mmapOffset, message.numQueues, message.queueSize);
        const inUse = Array.from({ length: buffer.numQueues }, (_, i) => buffer.region(i)!.version !== 0).filter(Boolean).length;
        this.log(`vhost-user: inflight buffer set: ${buffer.numQueues} queue(s) of ${buffer.queueSize} descriptors${inUse > 0 ? `, ${inUse} in use by an earlier back-end` : ''}`);
        this.replaceInflight(buffer);
        return null;
      }
      case 'NET_SET_MTU':
        throw new VhostUserError('PROTOCOL_VIOLATION', `${message.type} needs a protocol feature this back-end does not offer`, { request: message.type });
    }
  }

  private protocolFeaturesNegotiated = false;

  /** A kick on vring `index` (eventfd readable, or in-band VRING_KICK). */
  kick(index: number): void {
    const ring = this.vrings[index];
    if (!ring || !ring.started || !ring.enabled || this.closed) return;
    ring.kicks++;
    if (!this.active) this.activate();
    if (this.active && ring.queue) {
      try {
        this.device.queueNotify(index);
      } catch (error) {
        this.markNeedsReset(`queueNotify(${index}) threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  /** Ends the session: drains, resets the device, unmaps memory, closes every fd. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopAll().catch((error: unknown) => this.log(`vhost-user: stopping rings on close: ${String(error)}`));
    this.closed = true;
    for (const ring of this.vrings) this.clearRing(ring);
    this.memoryTable.clear();
    this.inflight?.close();
    this.inflight = null;
  }

  private requireProtocol(bit: number, request: VhostUserRequestName, fdsToClose: readonly number[] = []): void {
    if (!hasFeature(this.protocolFeatures, bit)) {
      for (const fd of fdsToClose) safeClose(fd);
      throw new VhostUserError('PROTOCOL_VIOLATION', `${request} without its protocol feature`, { request });
    }
  }

  /** Builds the device-side queue of a ring once its size, addresses, memory and kick are known. */
  private startRing(ring: Vring): void {
    ring.started = ring.kick !== null || ring.polling;
    if (!ring.started || ring.addresses === null || ring.num === 0) return;
    const memory = this.memoryTable.memory;
    if (memory === null) throw new VhostUserError('PROTOCOL_VIOLATION', `vring ${ring.index} started before SET_MEM_TABLE`, { request: 'SET_VRING_KICK', queue: ring.index });
    ring.queue = this.createQueue(ring);
    if (this.active) this.reactivate();
    this.nudgeResubmits(ring);
  }

  /**
   * A ring that starts with chains to resubmit, or with chains the driver made available while no
   * back-end listened (a reconnect), gets a kick of its own, as libvhost-user does: the guest is
   * waiting for those completions and may never kick again.
   */
  private nudgeResubmits(ring: Vring): void {
    if (!ring.started || !ring.enabled || !ring.queue) return;
    const resubmits = ring.queue instanceof InflightDeviceQueue && ring.queue.resubmitPending > 0;
    let available = false;
    try {
      available = ring.queue.hasAvailable();
    } catch {
      // a broken ring: the device reports it when it is kicked
    }
    if (!resubmits && !available) return;
    if (ring.kick) ring.kick.signal();
    else this.kick(ring.index);
  }

  /** The inflight buffer changes (no ring may have requests in flight): rings rebuild over it. */
  private replaceInflight(buffer: InflightBuffer): void {
    const old = this.inflight;
    this.inflight = buffer;
    this.rebuildQueues();
    old?.close();
  }

  private createQueue(ring: Vring): DeviceQueue {
    const memory = this.memoryTable.memory!;
    const addresses = ring.addresses!;
    const features = queueFeaturesOf(this.ackedFeatures);
    const packed = queueLayoutOf(this.ackedFeatures) === 'packed';
    const translate = (address: bigint, length: number, what: string): number => {
      const guest = this.memoryTable.translate(address, length);
      if (guest === undefined) throw new VhostUserError('BAD_PAYLOAD', `vring ${ring.index} ${what} at 0x${address.toString(16)} is outside the shared memory`, { request: 'SET_VRING_ADDR', queue: ring.index });
      return guest;
    };
    const n = ring.num;
    try {
      if (packed) {
        const layout = { size: n, descRing: translate(addresses.desc, 16 * n, 'descriptor ring'), driverEvent: translate(addresses.avail, 4, 'driver event area'), deviceEvent: translate(addresses.used, 4, 'device event area') };
        const base = ring.base;
        return PackedDeviceQueue.restore(
          {
            version: 1, layout: 'packed', ring: layout, features,
            nextAvail: base & 0x7fff, availWrapCounter: (base & 0x8000) !== 0,
            nextUsed: (base >>> 16) & 0x7fff, usedWrapCounter: (base & 0x8000_0000) !== 0,
            inFlight: [], broken: false,
          },
          { memory, index: ring.index },
        );
      }
      const layout = {
        size: n,
        descTable: translate(addresses.desc, 16 * n, 'descriptor table'),
        availRing: translate(addresses.avail, 6 + 2 * n, 'available ring'),
        usedRing: translate(addresses.used, 6 + 8 * n, 'used ring'),
      };
      const region = this.inflight?.region(ring.index);
      if (region !== undefined && region.capacity >= n) {
        const { queue, recovery } = InflightDeviceQueue.open({ memory, layout, features, index: ring.index, base: ring.base, region, counter: this.inflightCounter });
        if (recovery && (recovery.heads.length > 0 || recovery.batchCleared > 0)) {
          this.log(`vhost-user: vring ${ring.index}: resubmitting ${recovery.heads.length} request(s) left in flight${recovery.batchCleared > 0 ? `, ${recovery.batchCleared} completed in an interrupted batch` : ''}`);
        }
        return queue;
      }
      // The used index lives in guest memory; the front-end gave the avail base (§ "Ring states").
      const usedIdx = memory.atomicLoadU16(layout.usedRing + 2);
      return SplitDeviceQueue.restore(
        { version: 1, layout: 'split', ring: layout, features, nextAvail: ring.base & 0xffff, nextUsed: usedIdx, inFlight: [], broken: false },
        { memory, features, index: ring.index },
      );
    } catch (error) {
      if (VhostUserError.isInstance(error)) throw error;
      throw new VhostUserError('BAD_PAYLOAD', `vring ${ring.index} cannot be set up: ${error instanceof Error ? error.message : String(error)}`, { request: 'SET_VRING_KICK', queue: ring.index }, { cause: error });
    }
  }

  private activate(): void {
    if (this.active || this.closed) return;
    const memory = this.memoryTable.memory;
    if (memory === null) return;
    const queues = this.vrings.map((r) => (r.started && r.enabled ? r.queue : null));
    if (queues.every((q) => q === null)) return;
    const interrupt: Interrupt = {
      signalQueue: (index) => {
        const call = this.vrings[index]?.call;
        if (call) {
          try {
            call.signal();
          } catch (error) {
            this.log(`vhost-user: call fd of vring ${index}: ${String(error)}`);
          }
        }
      },
      signalConfig: () => undefined, // no back-end request channel: config changes are read by GET_CONFIG
    };
    try {
      this.device.activate({ memory, features: this.ackedFeatures, queues, interrupt, markNeedsReset: (reason) => this.markNeedsReset(reason) });
      this.active = true;
    } catch (error) {
      this.markNeedsReset(`activate threw: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Queues changed while running: restart the device with the current set. */
  private reactivate(): void {
    this.device.reset();
    this.active = false;
    this.activate();
  }

  private markNeedsReset(reason = 'device error'): void {
    this.log(`vhost-user: device needs reset: ${reason}`);
    this.status |= DEVICE_NEEDS_RESET;
    for (const ring of this.vrings) {
      try {
        ring.err?.signal();
      } catch {
        // the front-end closed its end
      }
    }
  }

  /** GET_VRING_BASE: drain every ring, reset the device, return this ring's base. */
  private async stopRing(ring: Vring): Promise<number> {
    await this.drainAll('GET_VRING_BASE');
    const base = this.baseOf(ring);
    if (this.active) {
      // Capture the other running rings' positions, since reset drops their queues.
      for (const other of this.vrings) if (other !== ring && other.queue) other.base = this.baseOf(other);
      this.device.reset();
      this.active = false;
      for (const other of this.vrings) if (other !== ring && other.queue) other.queue = this.createQueue(other);
    }
    ring.started = false;
    ring.queue = null;
    ring.base = base;
    return base;
  }

  private baseOf(ring: Vring): number {
    if (!ring.queue) return ring.base;
    const state = ring.queue.saveState();
    if (state.layout === 'split') return state.nextAvail & 0xffff;
    return (state.nextAvail & 0x7fff) | (state.availWrapCounter ? 0x8000 : 0) | ((state.nextUsed & 0x7fff) << 16) | (state.usedWrapCounter ? 0x8000_0000 : 0);
  }

  private async stopAll(): Promise<void> {
    await this.drainAll('stop');
    for (const ring of this.vrings) {
      ring.base = this.baseOf(ring);
      ring.started = false;
      ring.queue = null;
    }
    if (this.active) {
      this.device.reset();
      this.active = false;
    }
  }

  /** Rings whose memory moved get new queue objects over the new mappings. */
  private rebuildQueues(): void {
    const wasActive = this.active;
    if (wasActive) {
      for (const ring of this.vrings) if (ring.queue) ring.base = this.baseOf(ring);
      this.device.reset();
      this.active = false;
    }
    for (const ring of this.vrings) if (ring.queue) ring.queue = this.createQueue(ring);
    if (wasActive) this.activate();
  }

  /** Waits until no queue has a request in flight (bounded by drainTimeoutMs). */
  private async drainAll(reason: string): Promise<void> {
    // Buffers a device holds with no work on them would otherwise only come back when the guest acts.
    if (this.active) this.device.quiesce?.();
    const deadline = Date.now() + this.drainTimeoutMs;
    for (;;) {
      const busy = this.vrings.reduce((n, r) => n + (r.queue ? r.queue.inFlight : 0), 0);
      if (busy === 0) return;
      if (Date.now() > deadline) throw new VhostUserError('PROTOCOL_VIOLATION', `${busy} requests still in flight after ${this.drainTimeoutMs} ms (${reason})`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  private clearRing(ring: Vring): void {
    if (ring.kick) this.onKickFd(ring.index, null);
    ring.clear();
  }
}

function safeClose(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // already closed
  }
}
