import type { GuestMemory } from '@virtio-ts/memory';
import type { DriverQueue } from '@virtio-ts/ring';
import {
  DeviceError,
  VIRTIO_F_NOTIFICATION_DATA,
  defaultQueueFactory,
  featureWord,
  hasFeature,
  type Features,
  type GuestAllocator,
  type QueueFactory,
  type QueueSetupOptions,
  type VirtioTransport,
} from '@virtio-ts/device';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAPABILITY_LIST,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_VENDOR_ID,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_COMMON_CFGGENERATION,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_AVAILHI,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCHI,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDHI,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_PCI_MODERN_DEVICE_ID_BASE,
  VIRTIO_PCI_VENDOR_ID,
} from './constants.js';
import { PciError } from './errors.js';
import { allocateDriverQueue } from './queue-allocation.js';
import type { AddressSpaceAllocator, MmioAccessor, MsiController, PciConfigAccessor } from './platform.js';

/** Options of {@link VirtioPciTransport.probe}. */
export interface VirtioPciTransportOptions {
  /** The function's configuration space: the only way in to a device we did not create. */
  readonly config: PciConfigAccessor;
  /** Guest-physical MMIO (where the BARs get mapped). */
  readonly mmio: MmioAccessor;
  /** Places the BARs in the guest's address space. */
  readonly addressSpace: AddressSpaceAllocator;
  readonly memory: GuestMemory;
  /** Guest RAM for rings (and, through `allocator`, for the driver's buffers). */
  readonly allocator: GuestAllocator;
  /** MSI-X messages; without one the transport uses INTx (call `handleIntx()` when the line is asserted). */
  readonly msi?: MsiController;
  readonly queueFactory?: QueueFactory;
}

/** A virtio structure located through its capability (§4.1.4). */
export interface VirtioStructure {
  readonly bar: number;
  readonly offset: number;
  readonly length: number;
  /** Where the structure's first byte is mapped in guest-physical space. */
  readonly address: number;
}

interface Capability {
  readonly bar: number;
  readonly offset: number;
  readonly length: number;
  readonly notifyOffMultiplier: number;
}

interface MsixCapability {
  readonly position: number;
  readonly tableSize: number;
  readonly tableBar: number;
  readonly tableOffset: number;
}

interface QueueRecord {
  readonly areas: number[];
  readonly notifyAddress: number;
  handler: (() => void) | undefined;
}

/** The capability list is at most (256 - 64) / 4 entries long; more means a loop. */
const MAX_CAPABILITIES = 48;
/** Polls of device_status after writing 0 before giving up (§4.1.4.3.2: "wait for a read ... to return 0"). */
const RESET_POLLS = 1000;
/** Config generation retries before the configuration is declared unstable (§2.5.1). */
const CONFIG_RETRIES = 64;
/** Largest BAR the driver maps: a virtio function needs a few KiB; refuse absurd sizes. */
const MAX_BAR_SIZE = 1 << 30;

/**
 * The driver side of virtio-pci modern (VIRTIO 1.3 §4.1): probes a function through its
 * configuration space only, sizes and maps its BARs, walks the capabilities, and implements
 * {@link VirtioTransport} for the front-end drivers. Each queue gets its own MSI-X vector when the
 * table is large enough (otherwise the queues share one), configuration changes get vector 0,
 * and without an MSI controller the transport falls back to INTx.
 *
 * @example
 * ```ts
 * const transport = VirtioPciTransport.probe({ config: bus.configAccessor(0), mmio: bus, addressSpace, memory, allocator, msi });
 * const features = negotiateFeatures(transport, featureBits(VIRTIO_RING_F_EVENT_IDX));
 * const queue = transport.setupQueue<number>(0, { onInterrupt: () => drain() });
 * setDriverOk(transport);
 * ```
 */
export class VirtioPciTransport implements VirtioTransport {
  readonly deviceType: number;
  readonly memory: GuestMemory;
  readonly allocator: GuestAllocator;
  readonly numQueues: number;
  readonly common: VirtioStructure;
  readonly notifyCfg: VirtioStructure & { readonly notifyOffMultiplier: number };
  readonly isr: VirtioStructure;
  readonly deviceConfig: VirtioStructure | undefined;
  /** True when interrupts arrive as MSI-X messages; false for INTx. */
  readonly usesMsix: boolean;

  private readonly mmio: MmioAccessor;
  private readonly config: PciConfigAccessor;
  private readonly queueFactory: QueueFactory;
  private readonly msix: (MsixCapability & { readonly tableAddress: number }) | undefined;
  private readonly msi: MsiController | undefined;
  private readonly queues = new Map<number, QueueRecord>();
  private readonly messages: number[] = [];
  private driverFeatures: Features = 0n;
  private configHandler: (() => void) | undefined;

  private constructor(
    options: VirtioPciTransportOptions,
    deviceType: number,
    structures: { common: VirtioStructure; notify: VirtioStructure & { notifyOffMultiplier: number }; isr: VirtioStructure; device: VirtioStructure | undefined },
    msix: (MsixCapability & { tableAddress: number }) | undefined,
  ) {
    this.deviceType = deviceType;
    this.memory = options.memory;
    this.allocator = options.allocator;
    this.mmio = options.mmio;
    this.config = options.config;
    this.queueFactory = options.queueFactory ?? defaultQueueFactory;
    this.common = structures.common;
    this.notifyCfg = structures.notify;
    this.isr = structures.isr;
    this.deviceConfig = structures.device;
    this.numQueues = this.mmio.read(this.common.address + VIRTIO_PCI_COMMON_NUMQ, 2);
    this.msi = options.msi;
    this.usesMsix = msix !== undefined && options.msi !== undefined && msix.tableSize >= 2;
    this.msix = this.usesMsix ? msix : undefined;
    if (this.usesMsix) this.setUpMsix();
  }

  /**
   * Probes the function behind `options.config`: checks it is a modern virtio device, walks
   * its capabilities, maps its BARs, enables memory decoding and bus mastering. Throws
   * {@link PciError} (NOT_VIRTIO, INVALID_CAPABILITY, INVALID_BAR, OUT_OF_ADDRESS_SPACE).
   */
  static probe(options: VirtioPciTransportOptions): VirtioPciTransport {
    const cfg = options.config;
    const vendor = cfg.read(PCI_VENDOR_ID, 2);
    const deviceId = cfg.read(PCI_DEVICE_ID, 2);
    // §4.1.2: modern devices only (0x1040 + id); transitional ids 0x1000..0x103f are legacy.
    if (vendor !== VIRTIO_PCI_VENDOR_ID || deviceId <= VIRTIO_PCI_MODERN_DEVICE_ID_BASE || deviceId > 0x107f) {
      throw new PciError('NOT_VIRTIO', `vendor 0x${vendor.toString(16)} device 0x${deviceId.toString(16)} is not a modern virtio-pci function`);
    }
    if ((cfg.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST) === 0) throw new PciError('INVALID_CAPABILITY', 'no capability list');
    const { virtio, msix } = walkCapabilities(cfg);
    const common = virtio.get(VIRTIO_PCI_CAP_COMMON_CFG);
    const notify = virtio.get(VIRTIO_PCI_CAP_NOTIFY_CFG);
    const isr = virtio.get(VIRTIO_PCI_CAP_ISR_CFG);
    const device = virtio.get(VIRTIO_PCI_CAP_DEVICE_CFG);
    if (common === undefined || notify === undefined || isr === undefined) {
      throw new PciError('INVALID_CAPABILITY', 'a modern virtio function must present COMMON_CFG, NOTIFY_CFG and ISR_CFG capabilities');
    }
    // §4.1.4.3.1 / §4.1.4.4.1 / §4.1.4.6.1: alignment and minimum lengths.
    if (common.offset % 4 !== 0 || common.length < VIRTIO_PCI_COMMON_Q_USEDHI + 4) throw new PciError('INVALID_CAPABILITY', 'COMMON_CFG is unaligned or too short');
    if (notify.offset % 2 !== 0 || notify.length < 2) throw new PciError('INVALID_CAPABILITY', 'NOTIFY_CFG is unaligned or too short');
    if (isr.length < 1) throw new PciError('INVALID_CAPABILITY', 'ISR_CFG is empty');
    if (device !== undefined && device.offset % 4 !== 0) throw new PciError('INVALID_CAPABILITY', 'DEVICE_CFG is unaligned');

    const used = new Set<number>([common.bar, notify.bar, isr.bar]);
    if (device !== undefined) used.add(device.bar);
    if (msix !== undefined) used.add(msix.tableBar);
    const command = cfg.read(PCI_COMMAND, 2);
    cfg.write(PCI_COMMAND, 2, command & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
    const bars = new Map<number, { address: number; size: number }>();
    for (const bar of [...used].sort((a, b) => a - b)) bars.set(bar, mapBar(cfg, bar, options.addressSpace));
    cfg.write(PCI_COMMAND, 2, (command & ~PCI_COMMAND_IO) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

    const place = (cap: Capability, name: string): VirtioStructure => {
      const bar = bars.get(cap.bar)!;
      if (cap.offset + cap.length > bar.size) throw new PciError('INVALID_CAPABILITY', `${name} runs past the end of BAR ${cap.bar}`, { bar: cap.bar, offset: cap.offset });
      return { bar: cap.bar, offset: cap.offset, length: cap.length, address: bar.address + cap.offset };
    };
    let msixPlaced: (MsixCapability & { tableAddress: number }) | undefined;
    if (msix !== undefined) {
      const bar = bars.get(msix.tableBar)!;
      if (msix.tableOffset + msix.tableSize * PCI_MSIX_ENTRY_SIZE > bar.size) throw new PciError('INVALID_CAPABILITY', 'MSI-X table runs past its BAR', { bar: msix.tableBar });
      msixPlaced = { ...msix, tableAddress: bar.address + msix.tableOffset };
    }
    return new VirtioPciTransport(
      options,
      deviceId - VIRTIO_PCI_MODERN_DEVICE_ID_BASE,
      {
        common: place(common, 'COMMON_CFG'),
        notify: { ...place(notify, 'NOTIFY_CFG'), notifyOffMultiplier: notify.notifyOffMultiplier },
        isr: place(isr, 'ISR_CFG'),
        device: device === undefined ? undefined : place(device, 'DEVICE_CFG'),
      },
      msixPlaced,
    );
  }

  // --- status and features ------------------------------------------------------------------

  getStatus(): number {
    return this.mmio.read(this.common.address + VIRTIO_PCI_COMMON_STATUS, 1);
  }

  setStatus(status: number): void {
    this.mmio.write(this.common.address + VIRTIO_PCI_COMMON_STATUS, 1, status & 0xff);
  }

  reset(): void {
    this.mmio.write(this.common.address + VIRTIO_PCI_COMMON_STATUS, 1, 0);
    let polls = 0;
    while (this.getStatus() !== 0) {
      if (++polls > RESET_POLLS) throw new DeviceError('DEVICE_UNRESPONSIVE', 'device_status never read back 0 after reset', { deviceType: this.deviceType });
    }
    for (const record of this.queues.values()) for (const area of record.areas) this.allocator.free(area);
    this.queues.clear();
    this.driverFeatures = 0n;
    // §4.1.5.1.2: a reset unmaps every vector; map configuration changes to vector 0 again.
    if (this.usesMsix) this.mapVector(VIRTIO_PCI_COMMON_MSIX, 0);
  }

  getDeviceFeatures(): Features {
    const a = this.common.address;
    this.mmio.write(a + VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    const lo = this.mmio.read(a + VIRTIO_PCI_COMMON_DF, 4);
    this.mmio.write(a + VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    const hi = this.mmio.read(a + VIRTIO_PCI_COMMON_DF, 4);
    return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }

  setDriverFeatures(features: Features): void {
    if (hasFeature(features, VIRTIO_F_NOTIFICATION_DATA)) {
      throw new DeviceError('UNSUPPORTED', 'this transport notifies with the queue index only; do not accept VIRTIO_F_NOTIFICATION_DATA');
    }
    const a = this.common.address;
    this.mmio.write(a + VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    this.mmio.write(a + VIRTIO_PCI_COMMON_GF, 4, featureWord(features, 0));
    this.mmio.write(a + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    this.mmio.write(a + VIRTIO_PCI_COMMON_GF, 4, featureWord(features, 1));
    this.driverFeatures = features;
  }

  getDriverFeatures(): Features {
    return this.driverFeatures;
  }

  // --- configuration -----------------------------------------------------------------------------

  getConfigGeneration(): number {
    return this.mmio.read(this.common.address + VIRTIO_PCI_COMMON_CFGGENERATION, 1);
  }

  readConfig(offset: number, length: number): Uint8Array {
    const base = this.deviceConfigRange(offset, length);
    const out = new Uint8Array(length);
    for (let attempt = 0; attempt < CONFIG_RETRIES; attempt++) {
      const before = this.getConfigGeneration();
      let done = 0;
      while (done < length) {
        const width = accessWidth(offset + done, length - done);
        let value = this.mmio.read(base + done, width);
        for (let i = 0; i < width; i++) {
          out[done + i] = value & 0xff;
          value = Math.floor(value / 256);
        }
        done += width;
      }
      if (this.getConfigGeneration() === before) return out;
    }
    throw new DeviceError('DEVICE_UNRESPONSIVE', 'device configuration kept changing while being read (§2.5.1)', { deviceType: this.deviceType });
  }

  writeConfig(offset: number, data: Uint8Array): void {
    const base = this.deviceConfigRange(offset, data.length);
    let done = 0;
    while (done < data.length) {
      const width = accessWidth(offset + done, data.length - done);
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + data[done + i]!;
      this.mmio.write(base + done, width, value);
      done += width;
    }
  }

  // --- queues --------------------------------------------------------------------------------

  getQueueMaxSize(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.numQueues) return 0;
    this.selectQueue(index);
    return this.mmio.read(this.common.address + VIRTIO_PCI_COMMON_Q_SIZE, 2);
  }

  setupQueue<T>(index: number, options: QueueSetupOptions = {}): DriverQueue<T> {
    const max = this.getQueueMaxSize(index);
    if (max === 0) throw new DeviceError('INVALID_ARGUMENT', 'queue is unavailable', { queue: index });
    if (this.queues.has(index)) throw new DeviceError('INVALID_ARGUMENT', 'queue is already set up', { queue: index });
    const allocated = allocateDriverQueue<T>(index, max, this.driverFeatures, options, this.memory, this.allocator, this.queueFactory);
    const { queue, desc, driver, device } = allocated;
    const areas = [...allocated.allocations];

    const a = this.common.address;
    this.selectQueue(index);
    this.mmio.write(a + VIRTIO_PCI_COMMON_Q_SIZE, 2, queue.size);
    this.write64(a + VIRTIO_PCI_COMMON_Q_DESCLO, a + VIRTIO_PCI_COMMON_Q_DESCHI, desc);
    this.write64(a + VIRTIO_PCI_COMMON_Q_AVAILLO, a + VIRTIO_PCI_COMMON_Q_AVAILHI, driver);
    this.write64(a + VIRTIO_PCI_COMMON_Q_USEDLO, a + VIRTIO_PCI_COMMON_Q_USEDHI, device);
    const record: QueueRecord = { areas, notifyAddress: 0, handler: options.onInterrupt };
    if (this.usesMsix) this.mapVector(VIRTIO_PCI_COMMON_Q_MSIX, this.queueVectorEntry(index));
    const notifyOff = this.mmio.read(a + VIRTIO_PCI_COMMON_Q_NOFF, 2);
    const notifyOffset = notifyOff * this.notifyCfg.notifyOffMultiplier;
    // §4.1.4.4.1: cap.length >= queue_notify_off * notify_off_multiplier + 2.
    if (notifyOffset + 2 > this.notifyCfg.length) {
      for (const x of areas) this.allocator.free(x);
      throw new DeviceError('DEVICE_UNRESPONSIVE', 'queue_notify_off points past the notify structure', { queue: index, offset: notifyOffset });
    }
    this.queues.set(index, { ...record, notifyAddress: this.notifyCfg.address + notifyOffset });
    this.mmio.write(a + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    return queue;
  }

  notify(index: number): void {
    const record = this.queues.get(index);
    if (record === undefined) throw new DeviceError('INVALID_ARGUMENT', 'notify of a queue that is not set up', { queue: index });
    // §4.1.5.2: the driver writes the 16-bit virtqueue index at the queue's notify address.
    this.mmio.write(record.notifyAddress, 2, index);
  }

  /** The guest-physical notify address of a set-up queue (a VMM may turn it into a doorbell). */
  notifyAddress(index: number): number | undefined {
    return this.queues.get(index)?.notifyAddress;
  }

  // --- interrupts ----------------------------------------------------------------------------

  onConfigChange(handler: () => void): void {
    this.configHandler = handler;
  }

  /**
   * INTx handling (§4.1.5.4): reads (and so clears) ISR status and runs the handlers it names.
   * Returns false when the interrupt was not ours (ISR was 0).
   */
  handleIntx(): boolean {
    const isr = this.mmio.read(this.isr.address, 1);
    if (isr === 0) return false;
    if ((isr & VIRTIO_PCI_ISR_CONFIG) !== 0) this.configHandler?.();
    if ((isr & VIRTIO_PCI_ISR_QUEUE) !== 0) for (const record of [...this.queues.values()]) record.handler?.();
    return true;
  }

  /** Releases the MSI messages this transport allocated (after a final reset). */
  close(): void {
    for (const data of this.messages) this.msi?.release(data);
    this.messages.length = 0;
  }

  // --- internals -----------------------------------------------------------------------------

  private setUpMsix(): void {
    const msix = this.msix!;
    const msi = this.msi!;
    const control = msix.position + 2;
    this.config.write(control, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    const program = (entry: number, handler: () => void) => {
      const message = msi.allocate(handler);
      this.messages.push(message.data);
      const at = msix.tableAddress + entry * PCI_MSIX_ENTRY_SIZE;
      this.mmio.write(at, 4, message.address % 0x1_0000_0000);
      this.mmio.write(at + 4, 4, Math.floor(message.address / 0x1_0000_0000));
      this.mmio.write(at + 8, 4, message.data);
      this.mmio.write(at + 12, 4, 0); // unmask
    };
    program(0, () => this.configHandler?.());
    if (msix.tableSize >= this.numQueues + 1) {
      for (let q = 0; q < this.numQueues; q++) program(q + 1, () => this.queues.get(q)?.handler?.());
    } else {
      program(1, () => {
        for (const record of [...this.queues.values()]) record.handler?.();
      });
    }
    this.config.write(control, 2, PCI_MSIX_FLAGS_ENABLE);
    this.mapVector(VIRTIO_PCI_COMMON_MSIX, 0);
  }

  private queueVectorEntry(index: number): number {
    return this.msix!.tableSize >= this.numQueues + 1 ? index + 1 : 1;
  }

  /** Writes a vector field and checks it stuck (§4.1.5.1.2: failure reads back NO_VECTOR). */
  private mapVector(field: number, vector: number): void {
    const address = this.common.address + field;
    this.mmio.write(address, 2, vector);
    if (this.mmio.read(address, 2) === VIRTIO_MSI_NO_VECTOR) {
      throw new DeviceError('DEVICE_UNRESPONSIVE', `the device refused MSI-X vector ${vector}`, { deviceType: this.deviceType });
    }
  }

  private selectQueue(index: number): void {
    this.mmio.write(this.common.address + VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
  }

  private write64(lo: number, hi: number, value: number): void {
    // §4.1.3: 64-bit fields as two 32-bit writes, low half first (as Linux's vp_iowrite64_twopart).
    this.mmio.write(lo, 4, value % 0x1_0000_0000);
    this.mmio.write(hi, 4, Math.floor(value / 0x1_0000_0000));
  }

  private deviceConfigRange(offset: number, length: number): number {
    const cfg = this.deviceConfig;
    if (cfg === undefined || !Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > cfg.length) {
      throw new DeviceError('INVALID_ARGUMENT', 'device configuration access out of range', { offset, size: length });
    }
    return cfg.address + offset;
  }
}

/** The widest naturally aligned access (4, 2 or 1 bytes) at `offset` that fits in `remaining` (§4.1.3.1). */
function accessWidth(offset: number, remaining: number): 1 | 2 | 4 {
  if (remaining >= 4 && offset % 4 === 0) return 4;
  if (remaining >= 2 && offset % 2 === 0) return 2;
  return 1;
}

function walkCapabilities(cfg: PciConfigAccessor): { virtio: Map<number, Capability>; msix: MsixCapability | undefined } {
  const virtio = new Map<number, Capability>();
  let msix: MsixCapability | undefined;
  const seen = new Set<number>();
  let position = cfg.read(PCI_CAPABILITY_LIST, 1) & 0xfc;
  while (position !== 0) {
    if (position < 0x40 || seen.has(position) || seen.size >= MAX_CAPABILITIES) {
      throw new PciError('INVALID_CAPABILITY', 'capability list is malformed (pointer into the header, or a loop)', { capability: position });
    }
    seen.add(position);
    const id = cfg.read(position, 1);
    const next = cfg.read(position + 1, 1) & 0xfc;
    if (id === PCI_CAP_ID_VNDR) {
      const capLength = cfg.read(position + 2, 1);
      const cfgType = cfg.read(position + 3, 1);
      const bar = cfg.read(position + 4, 1);
      // §4.1.4: "The driver MUST ignore any vendor-specific capability structure which has a reserved bar value"; first of each type wins.
      if (capLength >= 16 && bar <= 5 && !virtio.has(cfgType) && cfgType >= VIRTIO_PCI_CAP_COMMON_CFG && cfgType <= VIRTIO_PCI_CAP_DEVICE_CFG) {
        if (cfgType !== VIRTIO_PCI_CAP_NOTIFY_CFG || capLength >= 20) {
          virtio.set(cfgType, {
            bar,
            offset: cfg.read(position + 8, 4) >>> 0,
            length: cfg.read(position + 12, 4) >>> 0,
            notifyOffMultiplier: cfgType === VIRTIO_PCI_CAP_NOTIFY_CFG ? cfg.read(position + 16, 4) >>> 0 : 0,
          });
        }
      }
    } else if (id === PCI_CAP_ID_MSIX && msix === undefined) {
      const control = cfg.read(position + 2, 2);
      const table = cfg.read(position + 4, 4) >>> 0;
      msix = { position, tableSize: (control & PCI_MSIX_FLAGS_QSIZE) + 1, tableBar: table & 7, tableOffset: table & ~7 };
    }
    position = next;
  }
  return { virtio, msix };
}

/** Sizes BAR `bar` (write all ones, read back the mask), places it and programs its address. */
function mapBar(cfg: PciConfigAccessor, bar: number, addressSpace: AddressSpaceAllocator): { address: number; size: number } {
  if (bar > 5) throw new PciError('INVALID_BAR', 'BAR index out of range', { bar });
  const register = PCI_BASE_ADDRESS_0 + bar * 4;
  const original = cfg.read(register, 4) >>> 0;
  if ((original & PCI_BASE_ADDRESS_SPACE_IO) !== 0) throw new PciError('INVALID_BAR', 'I/O BARs are not supported (modern virtio uses memory BARs)', { bar });
  const is64 = (original & 0x6) === PCI_BASE_ADDRESS_MEM_TYPE_64;
  if (is64 && bar === 5) throw new PciError('INVALID_BAR', 'a 64-bit BAR cannot start at BAR 5', { bar });
  cfg.write(register, 4, 0xffff_ffff);
  const lowMask = (cfg.read(register, 4) >>> 0) & ~0xf;
  let highMask = 0;
  if (is64) {
    cfg.write(register + 4, 4, 0xffff_ffff);
    highMask = cfg.read(register + 4, 4) >>> 0;
  }
  // size = two's complement of the mask; only masks with highMask all ones (< 4 GiB) are accepted.
  if (lowMask === 0 || (is64 && highMask !== 0xffff_ffff)) throw new PciError('INVALID_BAR', 'BAR is absent or larger than 4 GiB', { bar });
  const size = 0x1_0000_0000 - (lowMask >>> 0);
  if ((size & (size - 1)) !== 0 || size > MAX_BAR_SIZE) throw new PciError('INVALID_BAR', 'BAR size is not a power of two or is too large', { bar, size });
  const address = addressSpace.allocate(size, Math.max(size, 0x1000), !is64);
  cfg.write(register, 4, address % 0x1_0000_0000);
  if (is64) cfg.write(register + 4, 4, Math.floor(address / 0x1_0000_0000));
  return { address, size };
}
