import { featureBits, hasFeature, VIRTIO_ID_CONSOLE, type ActivationContext, type Features, type VirtioDevice } from '@virtio-ts/device';
import type { DeviceQueue } from '@virtio-ts/ring';
import { ringFeatures, type RingFeatureOptions } from '../common-features.js';
import { BackendError } from '../errors.js';
import { QueueRunner } from '../queue-runner.js';
import type { ConsoleBackend } from './console-backend.js';
import {
  CONSOLE_CONFIG,
  CONTROL_RECEIVEQ,
  CONTROL_TRANSMITQ,
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
  portOfQueue,
  receiveQueueOf,
  transmitQueueOf,
} from './constants.js';
import { ControlChannel } from './control-channel.js';
import { encodeResize, type ControlMessage } from './control-message.js';
import { ConsoleMetrics } from './metrics.js';
import { restoreConsoleState, type ConsoleDeviceState } from './persist.js';
import { ConsolePort } from './port.js';
import { utf8Encode } from '../web-apis.js';

/** One port of a {@link ConsoleDevice}. */
export interface ConsolePortOptions {
  readonly backend: ConsoleBackend;
  /** PORT_NAME sent to the guest (multiport), e.g. 'org.qemu.guest_agent.0'. */
  readonly name?: string;
  /** Nominate the port as a console (CONSOLE_PORT). Default: true for port 0 only. */
  readonly console?: boolean;
  /** The host side starts connected (PORT_OPEN 1 after PORT_READY). Default true. */
  readonly hostOpen?: boolean;
}

/** Options of a {@link ConsoleDevice}. */
export interface ConsoleDeviceOptions extends RingFeatureOptions {
  /** The ports, port 0 first. One port without `multiport` is a plain console. */
  readonly ports: readonly ConsolePortOptions[];
  /** Offer VIRTIO_CONSOLE_F_MULTIPORT. Default: more than one port. */
  readonly multiport?: boolean;
  /** `max_nr_ports` (§5.3.4). Default: the number of ports. */
  readonly maxNrPorts?: number;
  /** Console size (VIRTIO_CONSOLE_F_SIZE offered when given). */
  readonly size?: { readonly cols: number; readonly rows: number };
  /** Offer VIRTIO_CONSOLE_F_EMERG_WRITE. Default true. */
  readonly emergencyWrite?: boolean;
  /** Maximum size of each queue. Default 128. */
  readonly queueSize?: number;
  /** Host input kept per port while the guest cannot take it. Default 64 KiB; the rest is dropped. */
  readonly maxBufferedInput?: number;
}

/** Largest `max_nr_ports`: the queues of all ports must fit the transports' queue limit (1024). */
const MAX_PORTS = 511;

/**
 * A virtio-console device (VIRTIO 1.3 §5.3): a single port, or MULTIPORT with the control queue
 * handshake (DEVICE_READY → DEVICE_ADD → PORT_READY → CONSOLE_PORT / PORT_NAME / PORT_OPEN, and
 * RESIZE), emergency write, console size. Each port's host side is a {@link ConsoleBackend}.
 *
 * @example
 * ```ts
 * const serial = new MemoryConsoleBackend();
 * const agent = new MemoryConsoleBackend();
 * const device = new ConsoleDevice({ ports: [{ backend: serial }, { backend: agent, name: 'org.qemu.guest_agent.0' }] });
 * transport.attach(device);
 * serial.input('root\n');           // reaches the guest's hvc0
 * device.resize(120, 40);          // RESIZE to the guest
 * ```
 */
export class ConsoleDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_CONSOLE;
  readonly deviceFeatures: Features;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CONSOLE_CONFIG.size;
  readonly metrics = new ConsoleMetrics();
  readonly maxNrPorts: number;
  /** Ports by id; a slot is undefined after `removePort` (or before `addPort`). */
  readonly ports: (ConsolePort | undefined)[];
  private readonly maxBufferedInput: number;
  private readonly control: ControlChannel;
  private cols: number;
  private rows: number;
  private configGenerationCounter = 0;
  private negotiated: Features = 0n;
  private context: ActivationContext | undefined;
  private deviceReady = false;

  constructor(options: ConsoleDeviceOptions) {
    const fail = (field: string, message: string): never => {
      throw new BackendError('INVALID_OPTION', `console option ${field} ${message}`, { device: 'console', field });
    };
    const count = options.ports.length;
    if (count === 0) fail('ports', 'must name at least one port');
    const multiport = options.multiport ?? count > 1;
    if (!multiport && count > 1) fail('ports', 'has several ports but multiport is off');
    const maxNrPorts = options.maxNrPorts ?? count;
    if (!Number.isInteger(maxNrPorts) || maxNrPorts < count || maxNrPorts > MAX_PORTS) fail('maxNrPorts', `must be ${count}..${MAX_PORTS}`);
    const queueSize = options.queueSize ?? 128;
    if (!Number.isInteger(queueSize) || queueSize < 2 || queueSize > 32768 || (queueSize & (queueSize - 1)) !== 0) fail('queueSize', 'must be a power of two');
    const maxBufferedInput = options.maxBufferedInput ?? 64 * 1024;
    if (!Number.isInteger(maxBufferedInput) || maxBufferedInput < 1 || maxBufferedInput > 1 << 24) fail('maxBufferedInput', 'must be 1..16 MiB');
    const size = options.size;
    if (size !== undefined && [size.cols, size.rows].some((v) => !Number.isInteger(v) || v < 0 || v > 0xffff)) fail('size', 'cols and rows must be 16-bit');
    this.maxNrPorts = multiport ? maxNrPorts : 1;
    this.maxBufferedInput = maxBufferedInput;
    this.cols = size?.cols ?? 0;
    this.rows = size?.rows ?? 0;
    this.ports = options.ports.map((p, id) => this.createPort(id, p));
    this.control = new ControlChannel(this.metrics, (m) => this.onControl(m));
    let features = ringFeatures(options);
    if (multiport) features |= featureBits(VIRTIO_CONSOLE_F_MULTIPORT);
    if (size !== undefined) features |= featureBits(VIRTIO_CONSOLE_F_SIZE);
    if (options.emergencyWrite ?? true) features |= featureBits(VIRTIO_CONSOLE_F_EMERG_WRITE);
    this.deviceFeatures = features;
    // §5.3.2: port 0's pair, then (multiport) the control pair and one pair per further port.
    const queues = multiport ? 4 + 2 * (this.maxNrPorts - 1) : 2;
    this.queueMaxSizes = Array.from({ length: queues }, () => queueSize);
  }

  get configGeneration(): number {
    return this.configGenerationCounter;
  }

  /** True when MULTIPORT is negotiated. */
  get multiport(): boolean {
    return hasFeature(this.negotiated, VIRTIO_CONSOLE_F_MULTIPORT);
  }

  readConfig(offset: number, data: Uint8Array): void {
    const bytes = new Uint8Array(CONSOLE_CONFIG.size);
    const view = new DataView(bytes.buffer);
    view.setUint16(CONSOLE_CONFIG.cols, this.cols, true);
    view.setUint16(CONSOLE_CONFIG.rows, this.rows, true);
    view.setUint32(CONSOLE_CONFIG.maxNrPorts, this.maxNrPorts, true);
    // emerg_wr reads as 0.
    data.set(bytes.subarray(offset, offset + data.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    // §5.3.5.1: "The device MUST allow a write to emerg_wr, even on an unconfigured device", and
    // SHOULD transmit its lower byte.
    if (offset === CONSOLE_CONFIG.emergWr && data.length >= 1 && hasFeature(this.deviceFeatures, VIRTIO_CONSOLE_F_EMERG_WRITE)) {
      this.metrics.emergencyWrites++;
      try {
        void this.ports[0]?.backend.write(data.slice(0, 1));
      } catch {
        // A failing backend must not fail the guest's register write.
      }
    }
  }

  validateFeatures(features: Features): boolean {
    this.negotiated = features;
    return true;
  }

  activate(context: ActivationContext): void {
    this.context = context;
    this.negotiated = context.features;
    const multiport = this.multiport;
    for (const port of this.ports) {
      // §5.3.2: without MULTIPORT only port 0's queues exist.
      if (port === undefined || (!multiport && port.id > 0)) continue;
      this.attachPort(port, context);
    }
    if (multiport) {
      this.control.attach(
        context.memory,
        this.runnerFor(context, CONTROL_RECEIVEQ, () => this.control.flush()),
        this.runnerFor(context, CONTROL_TRANSMITQ, () => this.control.onTransmit()),
      );
    }
  }

  /**
   * Hot-plugs a port (MULTIPORT): takes the lowest free id below `max_nr_ports` and, once the
   * driver is ready, announces it with DEVICE_ADD (§5.3.6 step 4: "the same message is used for
   * port hot-plug"). Returns the id.
   */
  addPort(options: ConsolePortOptions): number {
    if (this.maxNrPorts === 1) throw new BackendError('INVALID_OPTION', 'ports can only be added to a MULTIPORT console', { device: 'console', field: 'multiport' });
    let id = 0;
    while (id < this.maxNrPorts && this.ports[id] !== undefined) id++;
    if (id >= this.maxNrPorts) throw new BackendError('INVALID_OPTION', `all ${this.maxNrPorts} ports (max_nr_ports) are in use`, { device: 'console', field: 'maxNrPorts' });
    const port = this.createPort(id, options);
    this.ports[id] = port;
    if (this.context !== undefined && this.multiport) this.attachPort(port, this.context);
    // §5.3.6.2.1: never announce a port that exists (the driver only knows announced ports).
    if (this.deviceReady) this.control.send({ id, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 });
    return id;
  }

  /** Hot-unplugs a port: DEVICE_REMOVE to the driver (§5.3.6.2), and the backend is released. */
  removePort(id: number): void {
    const port = this.port(id);
    port.detach();
    port.close();
    this.ports[id] = undefined;
    // §5.3.6.2.1: DEVICE_REMOVE only names a port created by an earlier DEVICE_ADD.
    if (this.deviceReady) this.control.send({ id, event: VIRTIO_CONSOLE_DEVICE_REMOVE, value: 0 });
  }

  queueNotify(index: number): void {
    this.metrics.notifications++;
    if (this.multiport && index === CONTROL_RECEIVEQ) return this.control.flush();
    if (this.multiport && index === CONTROL_TRANSMITQ) return this.control.onTransmit();
    const target = portOfQueue(index);
    const port = target === undefined ? undefined : this.ports[target.port];
    if (port === undefined) return;
    if (target!.direction === 'receive') port.deliver();
    else port.onTransmit();
  }

  reset(): void {
    for (const port of this.ports) port?.detach();
    this.control.detach();
    this.context = undefined;
    this.negotiated = 0n;
    this.deviceReady = false;
  }

  /**
   * Changes the console size: updates `cols`/`rows` with a configuration change notification
   * (VIRTIO_CONSOLE_F_SIZE, port 0), and with MULTIPORT sends RESIZE for every console port.
   */
  resize(cols: number, rows: number): void {
    if (![cols, rows].every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffff)) {
      throw new BackendError('INVALID_OPTION', 'console size must be 16-bit', { device: 'console', field: 'size' });
    }
    this.cols = cols;
    this.rows = rows;
    this.configGenerationCounter++;
    if (this.context !== undefined && hasFeature(this.negotiated, VIRTIO_CONSOLE_F_SIZE)) this.context.interrupt.signalConfig();
    if (this.multiport && this.deviceReady) {
      for (const port of this.ports) {
        if (port?.isConsole === true && port.ready) this.control.send({ id: port.id, event: VIRTIO_CONSOLE_RESIZE, value: 0, payload: encodeResize(cols, rows) });
      }
    }
  }

  /** Connects or disconnects the host side of a port (PORT_OPEN to the driver with MULTIPORT). */
  setHostOpen(portId: number, open: boolean): void {
    const port = this.port(portId);
    port.hostOpen = open;
    if (this.multiport && port.ready) this.control.send({ id: port.id, event: VIRTIO_CONSOLE_PORT_OPEN, value: open ? 1 : 0 });
  }

  /** Stops listening to every backend. */
  close(): void {
    for (const port of this.ports) port?.close();
  }

  saveState(): ConsoleDeviceState {
    return {
      version: 1,
      cols: this.cols,
      rows: this.rows,
      deviceReady: this.deviceReady,
      ports: this.ports
        .filter((p): p is ConsolePort => p !== undefined)
        .map((p) => ({ id: p.id, ready: p.ready, guestOpen: p.guestOpen, hostOpen: p.hostOpen, pendingInput: [...p.pendingInput()] })),
    };
  }

  restoreState(state: unknown): void {
    const portIds = this.ports.filter((p): p is ConsolePort => p !== undefined).map((p) => p.id);
    const s = restoreConsoleState(state, { portIds, maxBufferedInput: this.maxBufferedInput });
    this.cols = s.cols;
    this.rows = s.rows;
    this.deviceReady = s.deviceReady;
    for (const p of s.ports) {
      const port = this.ports[p.id]!;
      port.ready = p.ready;
      port.guestOpen = p.guestOpen;
      port.hostOpen = p.hostOpen;
      port.restoreInput(Uint8Array.from(p.pendingInput));
    }
  }

  private createPort(id: number, options: ConsolePortOptions): ConsolePort {
    const port = new ConsolePort(id, options.backend, options.name, options.console ?? id === 0, this.metrics, this.maxBufferedInput, (q) => this.mayReceive(q));
    port.hostOpen = options.hostOpen ?? true;
    return port;
  }

  private runnerFor(context: ActivationContext, index: number, resume: () => void): QueueRunner | undefined {
    const queue: DeviceQueue | null | undefined = context.queues[index];
    if (queue === null || queue === undefined) return undefined;
    const events = {
      ringError: () => this.metrics.ringErrors++,
      needsReset: () => this.metrics.needsReset++,
      interrupt: () => this.metrics.interrupts++,
    };
    return new QueueRunner(index, queue, context, events, resume);
  }

  private attachPort(port: ConsolePort, context: ActivationContext): void {
    port.attach(
      context.memory,
      this.runnerFor(context, receiveQueueOf(port.id), () => port.deliver()),
      this.runnerFor(context, transmitQueueOf(port.id), () => port.onTransmit()),
    );
  }

  private port(id: number): ConsolePort {
    const port = this.ports[id];
    if (port === undefined) throw new BackendError('NO_SUCH_PORT', `console port ${id} does not exist`, { device: 'console', port: id });
    return port;
  }

  private mayReceive(port: ConsolePort): boolean {
    // Without MULTIPORT the console is always open. With it, Linux drops input for a port no
    // guest process has open (except console ports), so the device keeps it until PORT_OPEN.
    return !this.multiport || port.guestOpen || (port.isConsole && port.ready);
  }

  private onControl(message: ControlMessage): void {
    const { id, event, value } = message;
    switch (event) {
      case VIRTIO_CONSOLE_DEVICE_READY:
        // §5.3.6.2: value 1 is success. Announce every port (§5.3.6.2.1: never an existing one).
        if (value !== 1 || this.deviceReady) return;
        this.deviceReady = true;
        for (const port of this.ports) if (port !== undefined) this.control.send({ id: port.id, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 });
        return;
      case VIRTIO_CONSOLE_PORT_READY: {
        const port = this.ports[id];
        if (port === undefined || !this.deviceReady) {
          this.metrics.faults.UNKNOWN_PORT++;
          return;
        }
        if (value !== 1 || port.ready) return;
        port.ready = true;
        // QEMU's order: CONSOLE_PORT, PORT_NAME, then PORT_OPEN when the host side is connected.
        if (port.isConsole) this.control.send({ id, event: VIRTIO_CONSOLE_CONSOLE_PORT, value: 1 });
        if (port.name !== undefined) this.control.send({ id, event: VIRTIO_CONSOLE_PORT_NAME, value: 1, payload: utf8Encode(port.name) });
        if (port.hostOpen) this.control.send({ id, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 });
        if (port.isConsole && (this.cols !== 0 || this.rows !== 0)) {
          this.control.send({ id, event: VIRTIO_CONSOLE_RESIZE, value: 0, payload: encodeResize(this.cols, this.rows) });
        }
        port.deliver();
        return;
      }
      case VIRTIO_CONSOLE_PORT_OPEN: {
        const port = this.ports[id];
        if (port === undefined || !port.ready) {
          this.metrics.faults.UNKNOWN_PORT++;
          return;
        }
        port.guestOpen = value === 1;
        port.deliver();
        return;
      }
      default:
        // DEVICE_ADD, DEVICE_REMOVE, CONSOLE_PORT, RESIZE, PORT_NAME are device → driver only.
        this.metrics.faults.UNEXPECTED_EVENT++;
    }
  }
}
