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
  readonly socket: UnixSocket;
  readonly memoryFd: number;
  readonly mapping: Mapping;
  readonly memory: GuestMemory;
  /** The address QEMU would report as its own mapping of guest RAM (any value works). */
  readonly userBase = 0x7f00_0000_0000n;
  readonly size: number;
  readonly kicks: EventFd[] = [];
  readonly calls: EventFd[] = [];
  queues: SplitDriverQueue<number>[] = [];

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

  async replyU64(): Promise<bigint> {
    const { payload } = await this.reply();
    return new DataView(payload.buffer, payload.byteOffset).getBigUint64(0, true);
  }

  /**
   * The usual start-up, as QEMU's vhost_dev_start does it: owner, features, memory table, then per
   * queue size, base, addresses, kick, call and enable.
   */
  async start(options: { queues: number; queueSize?: number; features?: bigint }): Promise<void> {
    const queueSize = options.queueSize ?? 64;
    this.send({ type: 'SET_OWNER' });
    this.send({ type: 'GET_FEATURES' });
    const offered = await this.replyU64();
    // Everything offered but the packed ring (this front-end drives split rings).
    const features = options.features ?? (offered & ~(1n << 34n));
    this.send({ type: 'SET_FEATURES', value: features });
    const ringFeatures = { eventIdx: (features & (1n << 29n)) !== 0n, indirect: false, inOrder: false };
    this.send({ type: 'GET_PROTOCOL_FEATURES' });
    const protocol = await this.replyU64();
    this.send({ type: 'SET_PROTOCOL_FEATURES', value: protocol & ((1n << 3n) | (1n << 9n)) }); // REPLY_ACK, CONFIG
    this.send({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: this.size, userAddress: this.userBase, mmapOffset: 0 }], fds: [this.memoryFd] });
    for (let i = 0; i < options.queues; i++) {
      const layout = splitQueueLayout(queueSize, 0x10000 * (i + 1));
      this.queues.push(new SplitDriverQueue<number>(layout, { memory: this.memory, features: ringFeatures }));
      const kick = EventFd.create();
      const call = EventFd.create();
      this.kicks.push(kick);
      this.calls.push(call);
      this.send({ type: 'SET_VRING_NUM', index: i, num: queueSize });
      this.send({ type: 'SET_VRING_BASE', index: i, num: 0 });
      this.send({
        type: 'SET_VRING_ADDR', index: i, flags: 0,
        descUserAddress: this.userBase + BigInt(layout.descTable),
        usedUserAddress: this.userBase + BigInt(layout.usedRing),
        availUserAddress: this.userBase + BigInt(layout.availRing),
        logGuestAddress: 0n,
      });
      this.send({ type: 'SET_VRING_KICK', index: i, fd: kick.fd });
      this.send({ type: 'SET_VRING_CALL', index: i, fd: call.fd });
      this.send({ type: 'SET_VRING_ENABLE', index: i, num: 1 }, true);
      await this.reply(); // REPLY_ACK: the ring is set up before we use it
    }
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
  }

  private pending = new Uint8Array(0);

  private async readExactly(n: number): Promise<Uint8Array> {
    while (this.pending.length < n) {
      const got = await this.socket.receiveAsync(4096);
      for (const fd of got.fds) closeFd(fd);
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
