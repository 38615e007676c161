import type { GuestMemory } from '@virtio-ts/memory';
import { gather, scatter, sliceSegments } from '../chain-io.js';
import type { QueueRunner } from '../queue-runner.js';
import { CONTROL_MESSAGE_SIZE } from './constants.js';
import { decodeControlMessage, encodeControlMessage, type ControlMessage } from './control-message.js';
import type { ConsoleMetrics } from './metrics.js';

/** Device → driver control messages kept while the driver has no control buffer (bounded). */
export const MAX_PENDING_CONTROL = 1024;
/** Bytes of a driver → device control message read at most (the header; no driver message carries more). */
const MAX_CONTROL_READ = CONTROL_MESSAGE_SIZE;

/**
 * The control receiveq / transmitq pair of a MULTIPORT console (VIRTIO 1.3 §5.3.6.2): one
 * message per buffer in each direction.
 */
export class ControlChannel {
  private readonly outgoing: Uint8Array[] = [];
  private receive: QueueRunner | undefined;
  private transmit: QueueRunner | undefined;
  private memory: GuestMemory | undefined;

  constructor(
    private readonly metrics: ConsoleMetrics,
    private readonly onMessage: (message: ControlMessage) => void,
  ) {}

  attach(memory: GuestMemory, receive: QueueRunner | undefined, transmit: QueueRunner | undefined): void {
    this.memory = memory;
    this.receive = receive;
    this.transmit = transmit;
  }

  detach(): void {
    this.receive?.detach();
    this.transmit?.detach();
    this.receive = undefined;
    this.transmit = undefined;
    this.outgoing.length = 0;
  }

  /** Messages waiting for a control receive buffer. */
  get pending(): number {
    return this.outgoing.length;
  }

  /** Queues a device → driver message and delivers what it can. */
  send(message: ControlMessage): void {
    if (this.outgoing.length >= MAX_PENDING_CONTROL) {
      this.metrics.controlDropped++;
      return;
    }
    this.outgoing.push(encodeControlMessage(message));
    this.flush();
  }

  /** Delivers pending messages into the driver's control receive buffers. */
  flush(): void {
    const runner = this.receive;
    const memory = this.memory;
    if (runner === undefined || memory === undefined || this.outgoing.length === 0) return;
    runner.drain((chain) => {
      if (chain.readableLength > 0) {
        this.metrics.faults.READABLE_IN_RECEIVEQ++;
        runner.complete(chain.head, 0);
        return true;
      }
      const message = this.outgoing.shift()!;
      const n = Math.min(message.length, chain.writableLength);
      if (n < message.length) this.metrics.faults.CONTROL_BUFFER_TOO_SHORT++;
      try {
        scatter(memory, sliceSegments(chain.writable, 0, n), message.subarray(0, n));
      } catch (error) {
        runner.fail(`console control: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      }
      this.metrics.controlSent++;
      runner.complete(chain.head, n);
      return this.outgoing.length > 0;
    });
  }

  /** The driver kicked the control transmitq. */
  onTransmit(): void {
    const runner = this.transmit;
    const memory = this.memory;
    if (runner === undefined || memory === undefined) return;
    runner.drain((chain) => {
      if (chain.writableLength > 0) {
        this.metrics.faults.WRITABLE_IN_TRANSMITQ++;
        runner.complete(chain.head, 0);
        return true;
      }
      const bytes = new Uint8Array(Math.min(chain.readableLength, MAX_CONTROL_READ));
      try {
        gather(memory, chain.readable, bytes);
      } catch (error) {
        runner.fail(`console control: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      }
      runner.complete(chain.head, 0);
      const message = decodeControlMessage(bytes);
      if (message === null) {
        this.metrics.faults.SHORT_CONTROL_MESSAGE++;
        return true;
      }
      this.metrics.controlReceived++;
      this.onMessage(message);
      return true;
    });
  }
}
