import type { VirtioTransport } from '@virtio-ts/device';
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VirtqueueClient } from '../virtqueue-client.js';
import { VIRTIO_NET_OK } from './constants.js';

/**
 * The controlq (§5.1.6.5): `struct virtio_net_ctrl { u8 class; u8 command; u8 data[]; u8 ack; }`
 * — class, command and data device-readable, the ack byte device-writable. Commands go one at a
 * time, as Linux sends them under the RTNL lock.
 */
export class ControlQueue {
  private readonly client: VirtqueueClient;
  private last: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly transport: VirtioTransport,
    readonly index: number,
    size?: number,
  ) {
    this.client = new VirtqueueClient(transport, index, size !== undefined ? { size } : {});
  }

  /** Sends one command; resolves on VIRTIO_NET_OK, rejects IO_ERROR on VIRTIO_NET_ERR (or any other ack). */
  command(commandClass: number, command: number, data: Uint8Array): Promise<void> {
    const run = this.last.then(() => this.run(commandClass, command, data));
    this.last = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.client.close();
  }

  private async run(commandClass: number, command: number, data: Uint8Array): Promise<void> {
    const buffer = new DmaBuffer(this.transport.allocator, 2 + data.length + 1);
    try {
      buffer.write(Uint8Array.of(commandClass, command, ...data));
      buffer.write(Uint8Array.of(0xff), 2 + data.length); // an ack the device never wrote reads as an error
      const used = await this.client.submit(buffer.segments(Number.POSITIVE_INFINITY, 0, 2 + data.length), buffer.segments(Number.POSITIVE_INFINITY, 2 + data.length, 1));
      const ack = buffer.read(2 + data.length, 1)[0]!;
      if (used < 1) throw new DriverError('PROTOCOL', `control command ${commandClass}.${command} came back without an ack`, { device: 'net', queue: this.index });
      if (ack !== VIRTIO_NET_OK) throw new DriverError('IO_ERROR', `the device refused control command ${commandClass}.${command}`, { device: 'net', queue: this.index, status: ack });
    } finally {
      buffer.free();
    }
  }
}
