import type { VirtioTransport } from '@virtio-ts/device';
import { RingError, type DriverQueue } from '@virtio-ts/ring';
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VIRTIO_NET_OK } from './constants.js';

interface Pending {
  readonly buffer: DmaBuffer;
  readonly ackOffset: number;
  readonly resolve: () => void;
  readonly reject: (error: DriverError) => void;
  readonly label: string;
}

/**
 * The controlq (§5.1.6.5): `struct virtio_net_ctrl { u8 class; u8 command; u8 data[]; u8 ack; }`
 * — class, command and data device-readable, the ack byte device-writable. Commands go one at a
 * time, as Linux sends them under the RTNL lock. A used element the ring refuses breaks the queue:
 * the pending command rejects PROTOCOL and `onBroken` is told; nothing is thrown into the
 * interrupt path.
 */
export class ControlQueue {
  private readonly queue: DriverQueue<Pending>;
  private last: Promise<unknown> = Promise.resolve();
  private closed = false;
  private broken = false;
  /** The command the device holds (commands are serialised, so at most one). */
  private current: Pending | undefined;

  constructor(
    private readonly transport: VirtioTransport,
    readonly index: number,
    private readonly onBroken: (error: RingError) => void,
    size?: number,
  ) {
    this.queue = transport.setupQueue<Pending>(index, { ...(size !== undefined ? { size } : {}), onInterrupt: () => this.onInterrupt() });
  }

  /** Sends one command; resolves on VIRTIO_NET_OK, rejects IO_ERROR on VIRTIO_NET_ERR (or any other ack). */
  command(commandClass: number, command: number, data: Uint8Array): Promise<void> {
    const run = this.last.then(() => this.run(commandClass, command, data));
    this.last = run.catch(() => undefined);
    return run;
  }

  /** Fails the pending command with DEVICE_RESET and frees its buffer (after a device reset). */
  close(): void {
    this.closed = true;
    const error = new DriverError('DEVICE_RESET', 'the device was reset while the control command was pending', { device: 'net', queue: this.index });
    for (const pending of this.queue.detachUnused()) {
      pending.buffer.free();
      pending.reject(error);
    }
  }

  private run(commandClass: number, command: number, data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new DriverError('DEVICE_RESET', 'the driver was reset', { device: 'net', queue: this.index }));
    if (this.broken) return Promise.reject(new DriverError('PROTOCOL', 'the controlq is broken by the device; reset the driver', { device: 'net', queue: this.index }));
    const ackOffset = 2 + data.length;
    const buffer = new DmaBuffer(this.transport.allocator, ackOffset + 1);
    const bytes = new Uint8Array(ackOffset + 1);
    bytes[0] = commandClass;
    bytes[1] = command;
    bytes.set(data, 2);
    bytes[ackOffset] = 0xff; // an ack the device never wrote reads as an error
    buffer.write(bytes);
    return new Promise<void>((resolve, reject) => {
      const label = `${commandClass}.${command}`;
      const pending: Pending = {
        buffer,
        ackOffset,
        label,
        resolve: () => this.settle(resolve),
        reject: (error: DriverError) => this.settle(() => reject(error)),
      };
      try {
        this.queue.add(buffer.segments(Number.POSITIVE_INFINITY, 0, ackOffset), buffer.segments(Number.POSITIVE_INFINITY, ackOffset, 1), pending);
      } catch (error) {
        buffer.free();
        reject(new DriverError('PROTOCOL', `control command ${label} could not be queued`, { device: 'net', queue: this.index }, { cause: error }));
        return;
      }
      // Before the kick: a synchronous device completes the command inside `notify`.
      this.current = pending;
      if (this.queue.kickPrepare()) this.transport.notify(this.index);
    });
  }

  private onInterrupt(): void {
    if (this.closed || this.broken) return;
    try {
      for (;;) {
        this.queue.disableCallback();
        for (let used = this.queue.getUsed(); used !== null; used = this.queue.getUsed()) this.complete(used.token, used.length);
        if (this.queue.enableCallback()) break;
      }
    } catch (error) {
      this.broken = true;
      const cause = RingError.isInstance(error) ? error : new RingError('QUEUE_BROKEN', String(error), { queue: this.index });
      // The buffer stays allocated until `close` (after the device reset): the device may still write it.
      this.current?.reject(new DriverError('PROTOCOL', `the device returned an invalid used element for control command ${this.current.label}`, { device: 'net', queue: this.index }, { cause }));
      this.onBroken(cause);
    }
  }

  private settle(callback: () => void): void {
    this.current = undefined;
    callback();
  }

  private complete(pending: Pending, used: number): void {
    const ack = pending.buffer.read(pending.ackOffset, 1)[0]!;
    pending.buffer.free();
    if (used < 1) {
      pending.reject(new DriverError('PROTOCOL', `control command ${pending.label} came back without an ack`, { device: 'net', queue: this.index }));
    } else if (ack !== VIRTIO_NET_OK) {
      pending.reject(new DriverError('IO_ERROR', `the device refused control command ${pending.label}`, { device: 'net', queue: this.index, status: ack }));
    } else {
      pending.resolve();
    }
  }
}
