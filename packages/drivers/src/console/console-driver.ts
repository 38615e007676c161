import {
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  featureBits,
  hasFeature,
  negotiateFeatures,
  setDriverOk,
  type Features,
  type VirtioTransport,
} from '@virtio-ts/device';
import { DmaBuffer } from '../dma-buffer.js';
import { DriverError } from '../errors.js';
import { VirtqueueClient } from '../virtqueue-client.js';
import { utf8Decode } from '../web-apis.js';
import {
  CONSOLE_CONFIG_OFFSETS as C,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_DEVICE_ADD,
  VIRTIO_CONSOLE_DEVICE_READY,
  VIRTIO_CONSOLE_DEVICE_REMOVE,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN,
  VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_RESIZE,
} from './constants.js';

/** Options of {@link ConsoleDriver.init}. */
export interface ConsoleDriverOptions {
  /** Negotiate MULTIPORT when offered. Default true. */
  readonly multiport?: boolean;
  /** Receive buffers kept posted per port. Default 4. */
  readonly receiveBuffers?: number;
  /** Size of each receive buffer. Default 256 bytes. */
  readonly receiveBufferSize?: number;
  readonly queueSize?: number;
}

/** What the driver knows about one port. */
export interface ConsolePortInfo {
  readonly id: number;
  /** PORT_NAME from the device. */
  name: string | undefined;
  /** The device nominated it a console (CONSOLE_PORT). */
  console: boolean;
  /** The host side is connected (PORT_OPEN from the device). */
  hostOpen: boolean;
  /** This driver has the port open (PORT_OPEN sent). */
  guestOpen: boolean;
}

interface PortQueues {
  readonly info: ConsolePortInfo;
  readonly receive: VirtqueueClient;
  readonly transmit: VirtqueueClient;
  readonly listeners: Set<(bytes: Uint8Array) => void>;
  /** Input that arrived with no listener (bounded). */
  readonly backlog: Uint8Array[];
}

const SUPPORTED = featureBits(
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
);
const MAX_BACKLOG = 64;
/** The largest control message this driver expects (header + a port name). */
const CONTROL_BUFFER_SIZE = 256;

/**
 * A virtio-console front-end driver model (VIRTIO 1.3 §5.3), like Linux's virtio_console: one
 * port, or MULTIPORT with the control-queue handshake (DEVICE_READY, PORT_READY on DEVICE_ADD,
 * PORT_OPEN on CONSOLE_PORT) and port names, opens and resizes.
 *
 * @example
 * ```ts
 * const console = ConsoleDriver.init(transport);
 * console.onData(0, (bytes) => console.write(0, bytes)); // echo
 * await console.write(0, new TextEncoder().encode('login: '));
 * ```
 */
export class ConsoleDriver {
  readonly features: Features;
  readonly multiport: boolean;
  readonly maxNrPorts: number;
  /** Console size: from the config space (SIZE) or the last RESIZE message. */
  size: { cols: number; rows: number } | undefined;
  private readonly ports = new Map<number, PortQueues>();
  private readonly portWaiters = new Map<number, ((info: ConsolePortInfo) => void)[]>();
  private readonly options: Required<Pick<ConsoleDriverOptions, 'receiveBuffers' | 'receiveBufferSize'>>;
  private readonly queueOptions: { size?: number };
  private readonly pairs = new Map<number, { receive: VirtqueueClient; transmit: VirtqueueClient }>();
  private controlReceive: VirtqueueClient | undefined;
  private controlTransmit: VirtqueueClient | undefined;
  private closed = false;

  private constructor(
    readonly transport: VirtioTransport,
    features: Features,
    options: ConsoleDriverOptions,
  ) {
    this.features = features;
    this.multiport = hasFeature(features, VIRTIO_CONSOLE_F_MULTIPORT);
    this.options = { receiveBuffers: options.receiveBuffers ?? 4, receiveBufferSize: options.receiveBufferSize ?? 256 };
    this.queueOptions = options.queueSize !== undefined ? { size: options.queueSize } : {};
    const maxNrPorts = this.multiport ? new DataView(transport.readConfig(C.maxNrPorts, 4).buffer).getUint32(0, true) : 1;
    // Queues the transport does not have cannot be used, whatever max_nr_ports claims.
    this.maxNrPorts = Math.max(1, Math.min(maxNrPorts, this.multiport ? Math.floor((transport.numQueues - 2) / 2) : 1));
    this.readSize();
    transport.onConfigChange(() => this.readSize());
  }

  /**
   * Initialises the device (§3.1.1): all queues are set up before DRIVER_OK, as Linux does.
   * With MULTIPORT it then sends DEVICE_READY; ports appear as the device adds them.
   */
  static init(transport: VirtioTransport, options: ConsoleDriverOptions = {}): ConsoleDriver {
    const supported = options.multiport === false ? SUPPORTED & ~featureBits(VIRTIO_CONSOLE_F_MULTIPORT) : SUPPORTED;
    const features = negotiateFeatures(transport, supported);
    const driver = new ConsoleDriver(transport, features, options);
    driver.setUpQueues();
    setDriverOk(transport);
    driver.start();
    return driver;
  }

  /** Ports announced so far (port 0 at once without MULTIPORT). */
  portIds(): number[] {
    return [...this.ports.keys()];
  }

  /** What the driver knows about port `id`, or undefined before the device added it. */
  port(id: number): ConsolePortInfo | undefined {
    return this.ports.get(id)?.info;
  }

  /** Resolves when port `id` exists (after DEVICE_ADD with MULTIPORT). */
  whenPort(id: number): Promise<ConsolePortInfo> {
    const existing = this.ports.get(id);
    if (existing !== undefined) return Promise.resolve(existing.info);
    return new Promise((resolve) => {
      const list = this.portWaiters.get(id) ?? [];
      list.push(resolve);
      this.portWaiters.set(id, list);
    });
  }

  /** Receives the port's input; returns an unsubscribe function. Backlogged input is delivered at once. */
  onData(id: number, listener: (bytes: Uint8Array) => void): () => void {
    const port = this.requirePort(id);
    port.listeners.add(listener);
    for (const bytes of port.backlog.splice(0)) listener(bytes);
    return () => port.listeners.delete(listener);
  }

  /** Sends bytes on the port's transmitq; resolves when the device has consumed the buffer. */
  async write(id: number, bytes: Uint8Array): Promise<void> {
    const port = this.requirePort(id);
    if (bytes.length === 0) return;
    const buffer = new DmaBuffer(this.transport.allocator, bytes.length);
    try {
      buffer.write(bytes);
      // §5.3.6.1: "The driver MUST NOT put a device-writable buffer in a transmitq."
      await port.transmit.submit(buffer.segments(), []);
    } finally {
      buffer.free();
    }
  }

  /** Opens (or closes) the port from the guest side: PORT_OPEN (MULTIPORT). */
  async setOpen(id: number, open: boolean): Promise<void> {
    const port = this.requirePort(id);
    port.info.guestOpen = open;
    if (this.multiport) await this.sendControl(id, VIRTIO_CONSOLE_PORT_OPEN, open ? 1 : 0);
  }

  /** Emergency write of one byte through `emerg_wr` (VIRTIO_CONSOLE_F_EMERG_WRITE, §5.3.5). */
  emergencyWrite(byte: number): void {
    if (!hasFeature(this.features, VIRTIO_CONSOLE_F_EMERG_WRITE)) {
      throw new DriverError('UNSUPPORTED', 'VIRTIO_CONSOLE_F_EMERG_WRITE was not negotiated', { device: 'console' });
    }
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, byte & 0xff, true);
    this.transport.writeConfig(C.emergWr, bytes);
  }

  /** Resets the device; pending writes reject with DEVICE_RESET. */
  reset(): void {
    this.closed = true;
    for (const pair of this.pairs.values()) {
      pair.receive.close();
      pair.transmit.close();
    }
    this.controlReceive?.close();
    this.controlTransmit?.close();
    this.transport.reset();
  }

  private setUpQueues(): void {
    // §5.3.2: port 0 at 0/1, the control queues at 2/3, port n at 2n+2 / 2n+3.
    const pair = (rx: number) => ({ receive: new VirtqueueClient(this.transport, rx, this.queueOptions), transmit: new VirtqueueClient(this.transport, rx + 1, this.queueOptions) });
    this.pairs.set(0, pair(0));
    if (!this.multiport) return;
    this.controlReceive = new VirtqueueClient(this.transport, 2, this.queueOptions);
    this.controlTransmit = new VirtqueueClient(this.transport, 3, this.queueOptions);
    for (let id = 1; id < this.maxNrPorts; id++) this.pairs.set(id, pair(2 * id + 2));
  }

  private start(): void {
    if (!this.multiport) {
      this.addPort(0);
      return;
    }
    for (let i = 0; i < this.options.receiveBuffers * 2; i++) this.postControlBuffer();
    // §5.3.6.2.2: "The driver MUST send a VIRTIO_CONSOLE_DEVICE_READY message if MULTIPORT is negotiated."
    void this.sendControl(0, VIRTIO_CONSOLE_DEVICE_READY, 1).catch(() => undefined);
  }

  private addPort(id: number): void {
    const pair = this.pairs.get(id)!;
    const port: PortQueues = {
      info: { id, name: undefined, console: false, hostOpen: !this.multiport, guestOpen: !this.multiport },
      ...pair,
      listeners: new Set(),
      backlog: [],
    };
    this.ports.set(id, port);
    for (let i = 0; i < this.options.receiveBuffers; i++) this.postReceive(port);
    for (const resolve of this.portWaiters.get(id) ?? []) resolve(port.info);
    this.portWaiters.delete(id);
  }

  private postReceive(port: PortQueues): void {
    if (this.closed || this.ports.get(port.info.id) !== port) return;
    const buffer = new DmaBuffer(this.transport.allocator, this.options.receiveBufferSize);
    // §5.3.6.1: "The driver MUST NOT put a device-readable buffer in a receiveq."
    port.receive.submit([], buffer.segments()).then(
      (used) => {
        const bytes = buffer.read(0, used);
        buffer.free();
        if (used > 0) {
          if (port.listeners.size === 0) {
            if (port.backlog.length < MAX_BACKLOG) port.backlog.push(bytes);
          } else for (const listener of port.listeners) listener(bytes);
        }
        this.postReceive(port);
      },
      () => buffer.free(),
    );
  }

  private postControlBuffer(): void {
    if (this.closed || this.controlReceive === undefined) return;
    const buffer = new DmaBuffer(this.transport.allocator, CONTROL_BUFFER_SIZE);
    this.controlReceive.submit([], buffer.segments()).then(
      (used) => {
        const bytes = buffer.read(0, used);
        buffer.free();
        this.onControl(bytes);
        this.postControlBuffer();
      },
      () => buffer.free(),
    );
  }

  private async sendControl(id: number, event: number, value: number): Promise<void> {
    const queue = this.controlTransmit;
    if (queue === undefined) return;
    const buffer = new DmaBuffer(this.transport.allocator, 8);
    try {
      const bytes = new Uint8Array(8);
      const view = new DataView(bytes.buffer);
      view.setUint32(0, id, true);
      view.setUint16(4, event, true);
      view.setUint16(6, value, true);
      buffer.write(bytes);
      await queue.submit(buffer.segments(), []);
    } finally {
      buffer.free();
    }
  }

  private onControl(bytes: Uint8Array): void {
    if (bytes.length < 8) return; // a device bug; Linux ignores it too
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const id = view.getUint32(0, true);
    const event = view.getUint16(4, true);
    const value = view.getUint16(6, true);
    const port = this.ports.get(id);
    const ignore = () => undefined;
    switch (event) {
      case VIRTIO_CONSOLE_DEVICE_ADD:
        // §5.3.6.2.1: the device never adds an existing port nor one >= max_nr_ports.
        if (port !== undefined || id >= this.maxNrPorts) return;
        this.addPort(id);
        void this.sendControl(id, VIRTIO_CONSOLE_PORT_READY, 1).catch(ignore);
        return;
      case VIRTIO_CONSOLE_DEVICE_REMOVE:
        if (port === undefined) return;
        this.ports.delete(id);
        return;
      case VIRTIO_CONSOLE_CONSOLE_PORT:
        if (port === undefined) return;
        port.info.console = true;
        // §5.3.6.2.2: "MUST respond with a VIRTIO_CONSOLE_PORT_OPEN message, which MUST have value set to 1."
        port.info.guestOpen = true;
        void this.sendControl(id, VIRTIO_CONSOLE_PORT_OPEN, 1).catch(ignore);
        return;
      case VIRTIO_CONSOLE_RESIZE:
        // struct virtio_console_resize { le16 cols; le16 rows; } follows the header (spec order).
        if (bytes.length >= 12) this.size = { cols: view.getUint16(8, true), rows: view.getUint16(10, true) };
        return;
      case VIRTIO_CONSOLE_PORT_OPEN:
        if (port !== undefined) port.info.hostOpen = value === 1;
        return;
      case VIRTIO_CONSOLE_PORT_NAME:
        if (port !== undefined) port.info.name = utf8Decode(bytes.subarray(8));
        return;
      default:
        return;
    }
  }

  private readSize(): void {
    if (!hasFeature(this.features, VIRTIO_CONSOLE_F_SIZE)) return;
    const bytes = this.transport.readConfig(C.cols, 4);
    const view = new DataView(bytes.buffer, bytes.byteOffset, 4);
    this.size = { cols: view.getUint16(0, true), rows: view.getUint16(2, true) };
  }

  private requirePort(id: number): PortQueues {
    const port = this.ports.get(id);
    if (port === undefined) throw new DriverError('INVALID_ARGUMENT', `console port ${id} does not exist (yet)`, { device: 'console', port: id });
    return port;
  }
}
