import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain } from '@virtio-ts/ring';
import { gather, scatter, sliceSegments } from '../chain-io.js';
import type { QueueRunner } from '../queue-runner.js';
import type { ConsoleBackend } from './console-backend.js';
import type { ConsoleMetrics } from './metrics.js';

/** Largest piece of guest output handed to a backend at once (bounds the copy buffer). */
export const TRANSMIT_CHUNK = 64 * 1024;

/**
 * One console port (VIRTIO 1.3 §5.3.6): host input waits in a bounded buffer until the guest has
 * a receive buffer (and, with MULTIPORT, has opened the port); guest output goes to the backend
 * in order.
 */
export class ConsolePort {
  /** The driver answered PORT_READY with success. */
  ready = false;
  /** The guest has the port open (PORT_OPEN from the driver). */
  guestOpen = false;
  /** The host side is connected (PORT_OPEN sent to the driver). */
  hostOpen = true;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private receive: QueueRunner | undefined;
  private transmit: QueueRunner | undefined;
  private memory: GuestMemory | undefined;
  private epoch = 0;
  private transmitTail: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;

  constructor(
    readonly id: number,
    readonly backend: ConsoleBackend,
    readonly name: string | undefined,
    readonly isConsole: boolean,
    private readonly metrics: ConsoleMetrics,
    private readonly maxBufferedInput: number,
    /** Whether input may be delivered (single port: always; multiport: once open or a console). */
    private readonly mayReceive: (port: ConsolePort) => boolean,
  ) {
    this.unsubscribe = backend.onData((bytes) => this.input(bytes));
  }

  /** Host input bytes not yet delivered. */
  get bufferedInput(): number {
    return this.pendingBytes;
  }

  /** The pending input, concatenated (persist). */
  pendingInput(): Uint8Array {
    const out = new Uint8Array(this.pendingBytes);
    let at = 0;
    for (const chunk of this.pending) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /** Connects the port to its queues (device activation). */
  attach(memory: GuestMemory, receive: QueueRunner | undefined, transmit: QueueRunner | undefined): void {
    this.epoch++;
    this.memory = memory;
    this.receive = receive;
    this.transmit = transmit;
    this.transmitTail = Promise.resolve();
  }

  /** Disconnects the port (device reset); guest-side state goes back to the initial one. */
  detach(): void {
    this.epoch++;
    this.receive?.detach();
    this.transmit?.detach();
    this.receive = undefined;
    this.transmit = undefined;
    this.ready = false;
    this.guestOpen = false;
  }

  /** Stops listening to the backend. */
  close(): void {
    this.unsubscribe();
  }

  /** Host input: buffered (bounded), then delivered when possible. */
  input(bytes: Uint8Array): void {
    const room = this.maxBufferedInput - this.pendingBytes;
    const take = Math.min(room, bytes.length);
    if (take < bytes.length) this.metrics.inputDropped += bytes.length - take;
    if (take > 0) {
      this.pending.push(bytes.slice(0, take));
      this.pendingBytes += take;
    }
    this.deliver();
  }

  /** Restores pending input (persist). */
  restoreInput(bytes: Uint8Array): void {
    this.pending = bytes.length > 0 ? [bytes.slice()] : [];
    this.pendingBytes = bytes.length;
  }

  /** Moves pending input into the guest's receive buffers (§5.3.6 step 2). */
  deliver(): void {
    const runner = this.receive;
    const memory = this.memory;
    if (runner === undefined || memory === undefined || this.pendingBytes === 0 || !this.mayReceive(this)) return;
    runner.drain((chain) => {
      if (chain.readableLength > 0) {
        // §5.3.6.1: the driver MUST NOT put a device-readable buffer in a receiveq.
        this.metrics.faults.READABLE_IN_RECEIVEQ++;
        runner.complete(chain.head, 0);
        return true;
      }
      let written: number;
      try {
        written = this.fillFromPending(memory, chain);
      } catch (error) {
        runner.fail(`console port ${this.id}: receive: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      }
      this.metrics.receivedBytes += written;
      runner.complete(chain.head, written);
      return this.pendingBytes > 0;
    });
  }

  /** The driver kicked the transmitq: hand every buffer's bytes to the backend, in order. */
  onTransmit(): void {
    const runner = this.transmit;
    const memory = this.memory;
    if (runner === undefined || memory === undefined) return;
    runner.drain((chain) => this.transmitChain(runner, memory, chain));
  }

  private transmitChain(runner: QueueRunner, memory: GuestMemory, chain: DescriptorChain): void {
    if (chain.writableLength > 0) {
      // §5.3.6.1: the driver MUST NOT put a device-writable buffer in a transmitq.
      this.metrics.faults.WRITABLE_IN_TRANSMITQ++;
      runner.complete(chain.head, 0);
      return;
    }
    const epoch = this.epoch;
    let waits: Promise<void>[] | undefined;
    try {
      for (let at = 0; at < chain.readableLength; at += TRANSMIT_CHUNK) {
        const bytes = new Uint8Array(Math.min(TRANSMIT_CHUNK, chain.readableLength - at));
        gather(memory, sliceSegments(chain.readable, at, bytes.length), bytes);
        this.metrics.transmittedBytes += bytes.length;
        const result = this.backend.write(bytes);
        if (result !== undefined) (waits ??= []).push(result);
      }
    } catch (error) {
      runner.fail(`console port ${this.id}: transmit: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (waits === undefined) {
      runner.complete(chain.head, 0);
      return;
    }
    // Back-pressure: return the buffer once the backend took the bytes, in submission order.
    const all = Promise.all(waits).then(
      () => undefined,
      () => undefined,
    );
    this.transmitTail = this.transmitTail.then(() => all).then(() => {
      if (epoch === this.epoch) runner.complete(chain.head, 0);
    });
  }

  private fillFromPending(memory: GuestMemory, chain: DescriptorChain): number {
    let written = 0;
    while (this.pending.length > 0 && written < chain.writableLength) {
      const chunk = this.pending[0]!;
      const n = Math.min(chunk.length, chain.writableLength - written);
      scatter(memory, sliceSegments(chain.writable, written, n), chunk.subarray(0, n));
      written += n;
      this.pendingBytes -= n;
      if (n === chunk.length) this.pending.shift();
      else this.pending[0] = chunk.subarray(n);
    }
    return written;
  }
}
