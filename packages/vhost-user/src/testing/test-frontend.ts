import { GuestMemory, GuestRegion } from '@virtio-ts/memory';
import { EventFd, Mapping, UnixSocket, closeFd, createMemfd } from '@virtio-ts/host';
import { SplitDriverQueue, splitQueueLayout, type Segment } from '@virtio-ts/ring';
import { HEADER_SIZE } from '../constants.js';
import { encodeRequest, type VhostUserMessage } from '../message.js';

/**
 * A minimal vhost-user front-end for tests (what QEMU does for a guest): guest RAM in a memfd it
 * shares, split rings it drives with the ring layer's driver side, eventfds for kicks and calls.
 * Messages can be sent raw, so tests can also play a hostile front-end.
 */
export class TestFrontend {
  /** The connection; {@link reconnect} replaces it (a restarted back-end). */
  socket: UnixSocket;
  readonly memoryFd: number;
  readonly mapping: Mapping;
  readonly memory: GuestMemory;
  /** The address QEMU would report as its own mapping of guest RAM (any value works). */
  readonly userBase = 0x7f00_0000_0000n;
  readonly size: number;
  readonly kicks: EventFd[] = [];
  readonly calls: EventFd[] = [];
  queues: SplitDriverQueue<number>[] = [];
  /** The inflight buffer from GET_INFLIGHT_FD (kept across reconnects, as QEMU keeps it). */
  inflight: { fd: number; mmapSize: number; mmapOffset: number; numQueues: number; queueSize: number } | null = null;
  private protocolFeatures = 0n;
  private features = 0n;
  private queueSize = 64;

  constructor(socket: UnixSocket, size = 16 << 20) {
    this.socket = socket;
    this.size = size;
    this.memoryFd = createMemfd('test-guest-ram', size);
    this.mapping = Mapping.map(this.memoryFd, size);
    this.memory = new GuestMemory([new GuestRegion({ guestAddress: 0, size, buffer: this.mapping.buffer })]);
  }

  /** Sends a request; fds are duplicated by the kernel, ours stay open. */
  send(message: VhostUserMessage, needReply = false): void {
    const { bytes, fds } = encodeRequest(message, { needReply });
    this.socket.send(bytes, fds);
  }

  /** Sends raw bytes (a hostile front-end). */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): void {
    this.socket.send(bytes, fds);
  }

  /** Receives one reply (header + payload). */
  async reply(): Promise<{ request: number; flags: number; payload: Uint8Array }> {
    const header = await this.readExactly(HEADER_SIZE);
    const view = new DataView(header.buffer, header.byteOffset);
    const size = view.getUint32(8, true);
    const payload = size > 0 ? await this.readExactly(size) : new Uint8Array(0);
    return { request: view.getUint32(0, true), flags: view.getUint32(4, true), payload };
  }

  /** Receives one reply and the fds that came with it (the caller owns them). */
  async replyWithFds(): Promise<{ request: number; flags: number; payload: Uint8Array; fds: number[] }> {
    this.keepFds = true;
    try {
      const reply = await this.reply();
      return { ...reply, fds: this.receivedFds.splice(0) };
    } finally {
      this.keepFds = false;
    }
  }

  async replyU64(): Promise<bigint> {
    const { payload } = await this.reply();
    return new DataView(payload.buffer, payload.byteOffset).getBigUint64(0, true);
  }

  /**
   * The usual start-up, as QEMU's vhost_dev_start does it: owner, features, memory table, then per
   * queue size, base, addresses, kick, call and enable.
   */
  async start(options: { queues: number; queueSize?: number; features?: bigint; inflight?: boolean }): Promise<void> {
    const queueSize = options.queueSize ?? 64;
    this.queueSize = queueSize;
    this.send({ type: 'SET_OWNER' });
    this.send({ type: 'GET_FEATURES' });
    const offered = await this.replyU64();
    // Everything offered but the packed ring (this front-end drives split rings).
    const features = options.features ?? (offered & ~(1n << 34n));
    this.features = features;
    this.send({ type: 'SET_FEATURES', value: features });
    const ringFeatures = { eventIdx: (features & (1n << 29n)) !== 0n, indirect: false, inOrder: false };
    this.send({ type: 'GET_PROTOCOL_FEATURES' });
    const protocol = await this.replyU64();
    // REPLY_ACK, CONFIG, and INFLIGHT_SHMFD when asked for.
    this.protocolFeatures = protocol & ((1n << 3n) | (1n << 9n) | (options.inflight ? 1n << 12n : 0n));
    this.send({ type: 'SET_PROTOCOL_FEATURES', value: this.protocolFeatures });
    if (options.inflight) {
      // As QEMU's vhost-user-blk does before vhost_dev_start: get a buffer, hand it back.
      this.send({ type: 'GET_INFLIGHT_FD', mmapSize: 0, mmapOffset: 0, numQueues: options.queues, queueSize });
      const reply = await this.replyWithFds();
      const v = new DataView(reply.payload.buffer, reply.payload.byteOffset);
      this.inflight = { fd: reply.fds[0]!, mmapSize: Number(v.getBigUint64(0, true)), mmapOffset: Number(v.getBigUint64(8, true)), numQueues: options.queues, queueSize };
      this.send({ type: 'SET_INFLIGHT_FD', ...this.inflight });
    }
    this.send({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: this.size, userAddress: this.userBase, mmapOffset: 0 }], fds: [this.memoryFd] });
    for (let i = 0; i < options.queues; i++) {
      const layout = splitQueueLayout(queueSize, 0x10000 * (i + 1));
      this.queues.push(new SplitDriverQueue<number>(layout, { memory: this.memory, features: ringFeatures }));
      const kick = EventFd.create();
      const call = EventFd.create();
      this.kicks.push(kick);
      this.calls.push(call);
      await this.setUpRing(i, 0);
    }
  }

  /**
   * What QEMU does when a restarted back-end comes back (`-chardev socket,reconnect=N`): the same
   * features, inflight buffer, memory and rings on a new connection, each ring's base set to its
   * used idx (QEMU rewinds last_avail_idx to used idx when GET_VRING_BASE failed). The guest's
   * rings and buffers stay as they are.
   */
  async reconnect(socket: UnixSocket): Promise<void> {
    this.socket.close();
    this.socket = socket;
    this.pending = new Uint8Array(0);
    this.send({ type: 'SET_OWNER' });
    this.send({ type: 'GET_FEATURES' });
    await this.replyU64();
    this.send({ type: 'SET_FEATURES', value: this.features });
    this.send({ type: 'GET_PROTOCOL_FEATURES' });
    await this.replyU64();
    this.send({ type: 'SET_PROTOCOL_FEATURES', value: this.protocolFeatures });
    if (this.inflight) this.send({ type: 'SET_INFLIGHT_FD', ...this.inflight });
    this.send({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: this.size, userAddress: this.userBase, mmapOffset: 0 }], fds: [this.memoryFd] });
    for (let i = 0; i < this.queues.length; i++) {
      const usedIdx = this.memory.readU16(splitQueueLayout(this.queueSize, 0x10000 * (i + 1)).usedRing + 2);
      await this.setUpRing(i, usedIdx);
    }
  }

  private async setUpRing(i: number, base: number): Promise<void> {
    const layout = splitQueueLayout(this.queueSize, 0x10000 * (i + 1));
    this.send({ type: 'SET_VRING_NUM', index: i, num: this.queueSize });
    this.send({ type: 'SET_VRING_BASE', index: i, num: base });
    this.send({
      type: 'SET_VRING_ADDR', index: i, flags: 0,
      descUserAddress: this.userBase + BigInt(layout.descTable),
      usedUserAddress: this.userBase + BigInt(layout.usedRing),
      availUserAddress: this.userBase + BigInt(layout.availRing),
      logGuestAddress: 0n,
    });
    this.send({ type: 'SET_VRING_KICK', index: i, fd: this.kicks[i]!.fd });
    this.send({ type: 'SET_VRING_CALL', index: i, fd: this.calls[i]!.fd });
    this.send({ type: 'SET_VRING_ENABLE', index: i, num: 1 }, true);
    await this.reply(); // REPLY_ACK: the ring is set up before we use it
  }

  /** Adds a chain to queue `q` with `token` and kicks, without waiting. */
  post(q: number, readable: Segment[], writable: Segment[], token: number): void {
    const queue = this.queues[q]!;
    queue.add(readable, writable, token);
    if (queue.kickPrepare()) this.kicks[q]!.signal();
  }

  /** Waits for `count` completions on queue `q`; returns their tokens and lengths in completion order. */
  async collect(q: number, count: number, timeoutMs = 10_000): Promise<{ token: number; length: number }[]> {
    const queue = this.queues[q]!;
    const out: { token: number; length: number }[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < count) {
      const used = queue.getUsed();
      if (used) {
        out.push({ token: used.token, length: used.length });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`the device completed ${out.length} of ${count} requests`);
      await new Promise((r) => setTimeout(r, 1));
    }
    return out;
  }

  /** Adds a chain to queue `q`, kicks, and waits until the device returns it. Returns the used length. */
  async submit(q: number, readable: Segment[], writable: Segment[], timeoutMs = 10_000): Promise<number> {
    const queue = this.queues[q]!;
    const token = Math.floor(Math.random() * 2 ** 31);
    queue.add(readable, writable, token);
    if (queue.kickPrepare()) this.kicks[q]!.signal();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const used = queue.getUsed();
      if (used) {
        if (used.token !== token) throw new Error(`completion of ${used.token}, expected ${token}`);
        return used.length;
      }
      if (Date.now() > deadline) throw new Error('the device did not complete the request');
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  close(): void {
    this.socket.close();
    for (const fd of [...this.kicks, ...this.calls]) fd.close();
    this.mapping.unmap();
    closeFd(this.memoryFd);
    if (this.inflight) closeFd(this.inflight.fd);
    this.inflight = null;
    for (const fd of this.receivedFds.splice(0)) closeFd(fd);
  }

  private pending = new Uint8Array(0);
  private keepFds = false;
  private readonly receivedFds: number[] = [];

  private async readExactly(n: number): Promise<Uint8Array> {
    while (this.pending.length < n) {
      const got = await this.socket.receiveAsync(4096);
      for (const fd of got.fds) {
        if (this.keepFds) this.receivedFds.push(fd);
        else closeFd(fd);
      }
      if (got.end) throw new Error('the back-end closed the connection');
      const joined = new Uint8Array(this.pending.length + got.data.length);
      joined.set(this.pending);
      joined.set(got.data, this.pending.length);
      this.pending = joined;
    }
    const out = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    return out;
  }
}
