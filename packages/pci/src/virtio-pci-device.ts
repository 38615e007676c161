import type { GuestMemory } from '@virtio-ts/memory';
import {
  DeviceCore,
  DeviceError,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_ID_BLOCK,
  VIRTIO_ID_CONSOLE,
  VIRTIO_ID_FS,
  VIRTIO_ID_GPU,
  VIRTIO_ID_INPUT,
  VIRTIO_ID_NET,
  VIRTIO_ID_SCSI,
  hasFeature,
  type DeviceCoreState,
  type Interrupt,
  type Notifier,
  type QueueFactory,
  type VirtioDevice,
} from '@virtio-ts/device';
import { CommonConfig } from './common-config.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_CONFIG_SPACE_SIZE,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_MSIX_CAP_SIZE,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_REVISION_ID,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_INTERRUPT,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_CAP_PCI_CFG,
  VIRTIO_PCI_CAP_SIZE,
  VIRTIO_PCI_CFG_CAP_SIZE,
  VIRTIO_PCI_COMMON_CFG_SIZE,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_PCI_MODERN_DEVICE_ID_BASE,
  VIRTIO_PCI_NOTIFY_CAP_SIZE,
  VIRTIO_PCI_SUBSYSTEM_ID,
  VIRTIO_PCI_SUBSYSTEM_VENDOR_ID,
  VIRTIO_PCI_VENDOR_ID,
} from './constants.js';
import { PciError } from './errors.js';
import { MAX_MSIX_VECTORS, MsixTable } from './msix.js';
import type { AccessSize, IntxLine, MsiSink } from './platform.js';

/** Where the virtio structures sit in the 64-bit memory BAR (BAR 0/1); each region is 4 KiB. */
export const VIRTIO_PCI_LAYOUT = Object.freeze({
  structuresBar: 0,
  msixBar: 2,
  commonOffset: 0x0000,
  isrOffset: 0x1000,
  deviceOffset: 0x2000,
  notifyOffset: 0x3000,
  /** §4.1.4.4: a power of two that is a multiple of 4, so VIRTIO_F_NOTIFICATION_DATA's 4-byte writes fit. */
  notifyOffMultiplier: 4,
  structuresBarSize: 0x4000,
});

/** Configuration-space offsets of the capabilities this device presents, in list order. */
const CAP_COMMON = 0x40;
const CAP_NOTIFY = CAP_COMMON + VIRTIO_PCI_CAP_SIZE; // 0x50
const CAP_ISR = CAP_NOTIFY + VIRTIO_PCI_NOTIFY_CAP_SIZE; // 0x64
const CAP_DEVICE = CAP_ISR + VIRTIO_PCI_CAP_SIZE; // 0x74
const CAP_PCI_CFG = CAP_DEVICE + VIRTIO_PCI_CAP_SIZE; // 0x84
const CAP_MSIX = CAP_PCI_CFG + VIRTIO_PCI_CFG_CAP_SIZE; // 0x98

/**
 * PCI class code (base class, subclass, programming interface) by virtio device type, as QEMU
 * presents them; anything else is "other" (0xff).
 */
export function defaultClassCode(deviceType: number): number {
  switch (deviceType) {
    case VIRTIO_ID_NET:
      return 0x020000; // network, ethernet
    case VIRTIO_ID_BLOCK:
    case VIRTIO_ID_SCSI:
      return 0x010000; // mass storage, SCSI
    case VIRTIO_ID_FS:
      return 0x018000; // mass storage, other
    case VIRTIO_ID_CONSOLE:
      return 0x078000; // communication, other
    case VIRTIO_ID_GPU:
      return 0x038000; // display, other
    case VIRTIO_ID_INPUT:
      return 0x098000; // input, other
    default:
      return 0xff0000; // unassigned class
  }
}

/** A plain, JSON-serialisable snapshot of a {@link VirtioPciDevice} (restored as untrusted input, H16). */
export interface VirtioPciDeviceState {
  readonly version: 1;
  /** The 64 configuration dwords; only the bits the driver can write are restored. */
  readonly config: readonly number[];
  readonly msix: { readonly table: readonly number[]; readonly pending: readonly number[] };
  readonly common: {
    readonly deviceFeatureSelect: number;
    readonly driverFeatureSelect: number;
    readonly queueSelect: number;
    readonly configVector: number;
    readonly queueVectors: readonly number[];
  };
  readonly isr: number;
  readonly core: DeviceCoreState;
}

/** Options of {@link VirtioPciDevice}. */
export interface VirtioPciDeviceOptions {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  /** Where MSI-X messages go (the platform's interrupt controller). */
  readonly msi?: MsiSink;
  /** The INTx pin (INTA#), used while MSI-X is disabled. */
  readonly intx?: IntxLine;
  /** Queue notifications (default: synchronous delivery to the device). */
  readonly notifier?: Notifier;
  readonly queueFactory?: QueueFactory;
  /** MSI-X table size; default one per queue plus one for configuration changes. */
  readonly msixVectors?: number;
  /** 24-bit class code; default {@link defaultClassCode}. */
  readonly classCode?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** Called for every guest error (also kept in `core.lastError`). */
  readonly onError?: (error: DeviceError) => void;
}

interface BarInfo {
  readonly size: number;
  readonly is64: boolean;
}

/**
 * The device side of virtio-pci modern (VIRTIO 1.3 §4.1), for a single-threaded VMM: a type-0
 * PCI function with the virtio capabilities, a 64-bit memory BAR for the virtio structures,
 * and MSI-X (table and PBA) in a 32-bit memory BAR. Modern only: no legacy I/O BAR, no
 * transitional device id.
 *
 * The VMM forwards configuration cycles to `configRead`/`configWrite` and MMIO exits that hit a
 * BAR to `mmioRead`/`mmioWrite` (see {@link PciBus}). None of these throws for anything the
 * guest does: faults are recorded on `core` and answered as the spec says.
 */
export class VirtioPciDevice {
  readonly core: DeviceCore;
  readonly deviceType: number;
  readonly msix: MsixTable;
  private readonly common: CommonConfig;
  private readonly regs = new Uint32Array(PCI_CONFIG_SPACE_SIZE / 4);
  private readonly writeMask = new Uint32Array(PCI_CONFIG_SPACE_SIZE / 4);
  private readonly bars: (BarInfo | undefined)[] = [];
  private readonly intx: IntxLine | undefined;
  private readonly notificationData: boolean;
  private readonly msixPbaOffset: number;
  private isr = 0;
  private intxLevel = false;

  constructor(options: VirtioPciDeviceOptions) {
    const { device } = options;
    const interrupt: Interrupt = {
      signalQueue: (index) => this.signalQueue(index),
      signalConfig: () => this.signalConfig(),
    };
    this.core = new DeviceCore({
      device,
      memory: options.memory,
      interrupt,
      queueFactory: options.queueFactory,
      notifier: options.notifier,
      onError: options.onError,
    });
    this.deviceType = device.deviceType;
    if (!Number.isInteger(device.deviceType) || device.deviceType < 1 || device.deviceType > 0x3f) {
      throw new PciError('INVALID_ARGUMENT', 'virtio device ids 1..63 map to PCI device ids 0x1041..0x107f');
    }
    const vectors = options.msixVectors ?? Math.min(this.core.numQueues + 1, MAX_MSIX_VECTORS);
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > MAX_MSIX_VECTORS) {
      throw new PciError('INVALID_ARGUMENT', `MSI-X vectors must be 1..${MAX_MSIX_VECTORS}`, { size: vectors });
    }
    if (this.core.numQueues * VIRTIO_PCI_LAYOUT.notifyOffMultiplier > VIRTIO_PCI_LAYOUT.structuresBarSize - VIRTIO_PCI_LAYOUT.notifyOffset) {
      throw new PciError('INVALID_ARGUMENT', 'too many queues for the notify region', { size: this.core.numQueues });
    }
    this.msix = new MsixTable(vectors, options.msi, (error) => this.core.report(error));
    this.common = new CommonConfig(this.core, vectors, () => {
      // A device reset clears ISR (and so deasserts INTx).
      this.isr = 0;
      this.updateIntx();
    });
    this.intx = options.intx;
    this.notificationData = hasFeature(this.core.offeredFeatures, VIRTIO_F_NOTIFICATION_DATA);
    this.msixPbaOffset = Math.ceil(this.msix.tableBytes / 0x800) * 0x800;
    const msixBarSize = Math.max(0x1000, nextPowerOfTwo(this.msixPbaOffset + this.msix.pbaBytes));
    this.bars[VIRTIO_PCI_LAYOUT.structuresBar] = { size: VIRTIO_PCI_LAYOUT.structuresBarSize, is64: true };
    this.bars[VIRTIO_PCI_LAYOUT.msixBar] = { size: msixBarSize, is64: false };
    this.buildConfigSpace(options, device.configSize);
  }

  // --- PCI configuration space ---------------------------------------------------------------

  /**
   * A configuration read of 1, 2 or 4 bytes within one dword of the 256-byte space. Anything else
   * reads as all ones (what a host bridge returns for an unsupported access) and is recorded.
   */
  configRead(offset: number, size: number): number {
    if (!configAccessOk(offset, size)) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'configuration read outside one dword of the 256-byte space', { offset, size }));
      return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
    }
    const index = offset >>> 2;
    if (index === (CAP_PCI_CFG + 16) >>> 2) this.pciCfgWindowRead();
    const dword = this.readDword(index);
    const shifted = dword >>> ((offset & 3) * 8);
    return size === 4 ? shifted >>> 0 : shifted & (size === 1 ? 0xff : 0xffff);
  }

  /** A configuration write of 1, 2 or 4 bytes within one dword; read-only bits keep their value. */
  configWrite(offset: number, size: number, value: number): void {
    if (!configAccessOk(offset, size)) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'configuration write outside one dword of the 256-byte space', { offset, size }));
      return;
    }
    const index = offset >>> 2;
    const shift = (offset & 3) * 8;
    const byteEnable = (size === 4 ? 0xffff_ffff : ((1 << (size * 8)) - 1) << shift) >>> 0;
    const mask = (this.writeMask[index]! & byteEnable) >>> 0;
    const old = this.regs[index]!;
    this.regs[index] = ((old & ~mask) | ((value << shift) & mask)) >>> 0;
    this.afterConfigWrite(index, old, byteEnable);
  }

  /** The guest-physical address BAR `bar` is programmed to (flag bits removed), or undefined for an absent BAR. */
  barAddress(bar: number): number | undefined {
    const info = this.bars[bar];
    if (info === undefined) return undefined;
    const lo = this.regs[(PCI_BASE_ADDRESS_0 >>> 2) + bar]! & ~0xf;
    const hi = info.is64 ? this.regs[(PCI_BASE_ADDRESS_0 >>> 2) + bar + 1]! : 0;
    return hi * 0x1_0000_0000 + (lo >>> 0);
  }

  /** Size in bytes of BAR `bar` (0 when absent). */
  barSize(bar: number): number {
    return this.bars[bar]?.size ?? 0;
  }

  /** PCI command: memory space decoding enabled. */
  get memoryEnabled(): boolean {
    return (this.regs[PCI_COMMAND >>> 2]! & PCI_COMMAND_MEMORY) !== 0;
  }

  /** PCI command: bus mastering (DMA and MSI) enabled. */
  get busMasterEnabled(): boolean {
    return (this.regs[PCI_COMMAND >>> 2]! & PCI_COMMAND_MASTER) !== 0;
  }

  /** BAR and offset of queue `index`'s notify address (for a VMM that turns it into a doorbell). */
  notifyLocation(index: number): { readonly bar: number; readonly offset: number } {
    return { bar: VIRTIO_PCI_LAYOUT.structuresBar, offset: VIRTIO_PCI_LAYOUT.notifyOffset + index * VIRTIO_PCI_LAYOUT.notifyOffMultiplier };
  }

  /** The ISR status byte without the read-to-clear side effect. */
  get isrStatus(): number {
    return this.isr;
  }

  /**
   * A PCI function reset (the VMM's system reset, or FLR): the virtio device resets, MSI-X is
   * disabled and every vector masked, the command register and BARs return to 0.
   */
  pciReset(): void {
    this.common.write(0x14, 1, 0);
    this.msix.reset();
    this.regs[PCI_COMMAND >>> 2] = (this.regs[PCI_COMMAND >>> 2]! & 0xffff_0000) >>> 0;
    this.msix.busMaster = false;
    for (const [bar, info] of this.bars.entries()) {
      if (info === undefined) continue;
      const index = (PCI_BASE_ADDRESS_0 >>> 2) + bar;
      this.regs[index] = info.is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0;
      if (info.is64) this.regs[index + 1] = 0;
    }
    const msixControl = CAP_MSIX >>> 2;
    this.regs[msixControl] = (this.regs[msixControl]! & 0x3fff_ffff) >>> 0;
    this.regs[(CAP_PCI_CFG + 4) >>> 2] = (this.regs[(CAP_PCI_CFG + 4) >>> 2]! & ~0xff) >>> 0;
    this.isr = 0;
    this.updateIntx();
  }

  /** A snapshot of configuration space, MSI-X, transport registers and the device core. */
  saveState(): VirtioPciDeviceState {
    return {
      version: 1,
      config: [...this.regs],
      msix: this.msix.saveState(),
      common: this.common.saveState(),
      isr: this.isr,
      core: this.core.saveState(),
    };
  }

  /**
   * Restores a {@link saveState} snapshot, all or nothing. Read-only configuration bits (ids, class,
   * capability structure) keep this device's values whatever the snapshot says. Throws a
   * DeviceError INVALID_STATE (a VMM error).
   */
  restoreState(state: unknown): void {
    const invalid = (message: string): never => {
      throw new DeviceError('INVALID_STATE', message, { deviceType: this.deviceType });
    };
    if (typeof state !== 'object' || state === null) return invalid('state must be an object');
    const s = state as Record<string, unknown>;
    if (s.version !== 1) invalid(`unsupported state version ${String(s.version)}`);
    const config = s.config;
    if (!Array.isArray(config) || config.length !== this.regs.length || !config.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff)) {
      invalid('config must hold 64 u32 values');
    }
    const msixProblem = MsixTable.stateProblem(s.msix, this.msix.size);
    if (msixProblem !== undefined) invalid(msixProblem);
    const commonProblem = this.common.stateProblem(s.common);
    if (commonProblem !== undefined) invalid(commonProblem);
    if (typeof s.isr !== 'number' || !Number.isInteger(s.isr) || s.isr < 0 || s.isr > 3) invalid('isr must be 0..3');
    // The core validates (and on failure resets) itself; nothing of the transport has changed yet.
    this.core.restoreState(s.core);
    for (let i = 0; i < this.regs.length; i++) {
      const mask = this.writeMask[i]!;
      this.regs[i] = ((this.regs[i]! & ~mask) | ((config as number[])[i]! & mask)) >>> 0;
    }
    this.msix.restoreState(s.msix as { table: number[]; pending: number[] });
    const control = this.regs[CAP_MSIX >>> 2]! >>> 16;
    this.msix.enabled = (control & PCI_MSIX_FLAGS_ENABLE) !== 0;
    this.msix.functionMasked = (control & PCI_MSIX_FLAGS_MASKALL) !== 0;
    this.msix.busMaster = this.busMasterEnabled;
    this.common.restoreState(s.common as ReturnType<CommonConfig['saveState']>);
    this.isr = s.isr as number;
    this.updateIntx();
  }

  // --- BAR accesses ----------------------------------------------------------------------------

  /**
   * A read of `size` (1, 2, 4, 8) bytes at `offset` in BAR `bar`. With memory space disabled it
   * reads all ones and does nothing (PCI master abort). Invalid accesses read 0 and are recorded.
   */
  mmioRead(bar: number, offset: number, size: number): number {
    if (!this.memoryEnabled) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'BAR read with memory space disabled', { offset, size }));
      return allOnes(size);
    }
    return this.barRead(bar, offset, size);
  }

  /** A write to BAR `bar`; dropped (and recorded) with memory space disabled or when invalid. */
  mmioWrite(bar: number, offset: number, size: number, value: number): void {
    if (!this.memoryEnabled) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'BAR write with memory space disabled', { offset, size }));
      return;
    }
    this.barWrite(bar, offset, size, value);
  }

  private barRead(bar: number, offset: number, size: number): number {
    if (!this.barAccessOk(bar, offset, size, 'read')) return 0;
    const s = size as AccessSize;
    if (bar === VIRTIO_PCI_LAYOUT.msixBar) {
      return offset < this.msixPbaOffset ? this.msix.readTable(offset, s) : this.msix.readPba(offset - this.msixPbaOffset, s);
    }
    const L = VIRTIO_PCI_LAYOUT;
    if (offset < L.isrOffset) return this.common.read(offset - L.commonOffset, s);
    if (offset < L.deviceOffset) {
      if (offset !== L.isrOffset) return this.invalid(offset, size, 'ISR read past its single byte');
      // §4.1.4.5: "The device MUST reset ISR status to 0 on driver read."
      const value = this.isr;
      this.isr = 0;
      this.updateIntx();
      return value;
    }
    if (offset < L.notifyOffset) {
      const data = new Uint8Array(size);
      this.core.readConfig(offset - L.deviceOffset, data);
      return littleEndian(data);
    }
    // Notify registers are write-only; reads return 0.
    return 0;
  }

  private barWrite(bar: number, offset: number, size: number, value: number): void {
    if (!this.barAccessOk(bar, offset, size, 'write')) return;
    const s = size as AccessSize;
    if (bar === VIRTIO_PCI_LAYOUT.msixBar) {
      if (offset < this.msixPbaOffset) this.msix.writeTable(offset, s, value);
      else this.msix.writePba(offset - this.msixPbaOffset, s);
      return;
    }
    const L = VIRTIO_PCI_LAYOUT;
    if (offset < L.isrOffset) return this.common.write(offset - L.commonOffset, s, value);
    if (offset < L.deviceOffset) {
      this.invalid(offset, size, 'ISR status is read-only');
      return;
    }
    if (offset < L.notifyOffset) {
      const data = new Uint8Array(size);
      writeLittleEndian(data, value);
      this.core.writeConfig(offset - L.deviceOffset, data);
      return;
    }
    this.notifyWrite(offset - L.notifyOffset, size, value);
  }

  private notifyWrite(offset: number, size: number, value: number): void {
    const multiplier = VIRTIO_PCI_LAYOUT.notifyOffMultiplier;
    // §4.1.5.2: a 16-bit write of the queue index, or with VIRTIO_F_NOTIFICATION_DATA a 32-bit
    // write of (index | next_off/wrap << 16). The address, not the value, selects the queue.
    if (offset % multiplier !== 0 || (size !== 2 && size !== 4)) {
      this.invalid(offset, size, 'notify write must be 2 or 4 bytes at a queue notify address');
      return;
    }
    if (!this.busMasterEnabled) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'queue notify with bus mastering disabled: the device cannot DMA', { offset }));
      return;
    }
    const index = offset / multiplier;
    const withData = this.notificationData && hasFeature(this.core.negotiatedFeatures, VIRTIO_F_NOTIFICATION_DATA) && size === 4;
    this.core.queueNotify(index, withData ? value >>> 16 : undefined);
  }

  // --- interrupts ------------------------------------------------------------------------------

  private signalQueue(index: number): void {
    if (this.msix.enabled) {
      const vector = this.common.queueVector(index);
      if (vector !== VIRTIO_MSI_NO_VECTOR) this.msix.signal(vector);
      return;
    }
    // §4.1.5.4: "If MSI-X capability is disabled, the device MUST set the Queue Interrupt bit in ISR status before sending a virtqueue notification".
    this.isr |= VIRTIO_PCI_ISR_QUEUE;
    this.updateIntx();
  }

  private signalConfig(): void {
    // §4.1.4.5: "The device MUST set the Device Configuration Interrupt bit in ISR status before sending a device configuration change notification".
    this.isr |= VIRTIO_PCI_ISR_CONFIG;
    if (this.msix.enabled) {
      if (this.common.configVector !== VIRTIO_MSI_NO_VECTOR) this.msix.signal(this.common.configVector);
      return;
    }
    this.updateIntx();
  }

  private updateIntx(): void {
    const command = this.regs[PCI_COMMAND >>> 2]!;
    const level = this.isr !== 0 && !this.msix.enabled && (command & PCI_COMMAND_INTX_DISABLE) === 0;
    if (level !== this.intxLevel) {
      this.intxLevel = level;
      this.intx?.setLevel(level);
    }
  }

  // --- configuration space internals -----------------------------------------------------------

  private buildConfigSpace(options: VirtioPciDeviceOptions, configSize: number): void {
    const set = (offset: number, size: 1 | 2 | 4, value: number, writable = 0) => {
      const index = offset >>> 2;
      const shift = (offset & 3) * 8;
      const mask = size === 4 ? 0xffff_ffff : ((1 << (size * 8)) - 1) << shift;
      this.regs[index] = ((this.regs[index]! & ~mask) | ((value << shift) & mask)) >>> 0;
      this.writeMask[index] = ((this.writeMask[index]! & ~mask) | ((writable << shift) & mask)) >>> 0;
    };
    set(PCI_VENDOR_ID, 2, VIRTIO_PCI_VENDOR_ID);
    set(PCI_DEVICE_ID, 2, VIRTIO_PCI_MODERN_DEVICE_ID_BASE + this.deviceType);
    set(PCI_COMMAND, 2, 0, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    // §4.1.2.1: "Non-transitional devices SHOULD have a PCI Revision ID of 1 or higher."
    set(PCI_REVISION_ID, 1, 1);
    const classCode = options.classCode ?? defaultClassCode(this.deviceType);
    set(PCI_CLASS_PROG, 1, classCode & 0xff);
    set(PCI_CLASS_PROG + 1, 2, (classCode >>> 8) & 0xffff);
    set(PCI_CACHE_LINE_SIZE, 1, 0, 0xff);
    set(PCI_HEADER_TYPE, 1, 0);
    for (const [bar, info] of this.bars.entries()) {
      if (info === undefined) continue;
      const base = PCI_BASE_ADDRESS_0 + bar * 4;
      set(base, 4, info.is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0, ~(info.size - 1) & ~0xf);
      if (info.is64) set(base + 4, 4, 0, 0xffff_ffff);
    }
    set(PCI_SUBSYSTEM_VENDOR_ID, 2, options.subsystemVendorId ?? VIRTIO_PCI_SUBSYSTEM_VENDOR_ID);
    set(PCI_SUBSYSTEM_ID, 2, options.subsystemId ?? VIRTIO_PCI_SUBSYSTEM_ID);
    set(PCI_INTERRUPT_LINE, 1, 0, 0xff);
    set(PCI_INTERRUPT_PIN, 1, 1); // INTA#
    set(PCI_CAPABILITY_LIST, 1, CAP_COMMON);
    const L = VIRTIO_PCI_LAYOUT;
    const virtioCap = (at: number, next: number, length: number, cfgType: number, bar: number, offset: number, structLength: number) => {
      set(at, 1, PCI_CAP_ID_VNDR);
      set(at + 1, 1, next);
      set(at + 2, 1, length);
      set(at + 3, 1, cfgType);
      set(at + 4, 1, bar);
      set(at + 8, 4, offset);
      set(at + 12, 4, structLength);
    };
    const deviceCfg = configSize > 0;
    virtioCap(CAP_COMMON, CAP_NOTIFY, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_CAP_COMMON_CFG, L.structuresBar, L.commonOffset, VIRTIO_PCI_COMMON_CFG_SIZE);
    const notifyLength = Math.max(this.core.numQueues, 1) * L.notifyOffMultiplier;
    virtioCap(CAP_NOTIFY, CAP_ISR, VIRTIO_PCI_NOTIFY_CAP_SIZE, VIRTIO_PCI_CAP_NOTIFY_CFG, L.structuresBar, L.notifyOffset, notifyLength);
    set(CAP_NOTIFY + 16, 4, L.notifyOffMultiplier);
    virtioCap(CAP_ISR, deviceCfg ? CAP_DEVICE : CAP_PCI_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_CAP_ISR_CFG, L.structuresBar, L.isrOffset, 1);
    if (deviceCfg) virtioCap(CAP_DEVICE, CAP_PCI_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_CAP_DEVICE_CFG, L.structuresBar, L.deviceOffset, configSize);
    virtioCap(CAP_PCI_CFG, CAP_MSIX, VIRTIO_PCI_CFG_CAP_SIZE, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0);
    // §4.1.4.9: cap.bar, cap.offset, cap.length and pci_cfg_data are read-write.
    set(CAP_PCI_CFG + 4, 1, 0, 0xff);
    set(CAP_PCI_CFG + 8, 4, 0, 0xffff_ffff);
    set(CAP_PCI_CFG + 12, 4, 0, 0xffff_ffff);
    set(CAP_PCI_CFG + 16, 4, 0, 0xffff_ffff);
    // MSI-X capability (PCI 3.0 §6.8.2): Table Size is N-1; Enable and Function Mask are writable.
    set(CAP_MSIX, 1, PCI_CAP_ID_MSIX);
    set(CAP_MSIX + 1, 1, 0);
    set(CAP_MSIX + 2, 2, this.msix.size - 1, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    set(CAP_MSIX + 4, 4, 0 | L.msixBar);
    set(CAP_MSIX + 8, 4, this.msixPbaOffset | L.msixBar);
    // Status: a capability list is present (PCI_STATUS_CAP_LIST); the interrupt bit is computed on read.
    set(PCI_COMMAND + 2, 2, PCI_STATUS_CAP_LIST);
    void PCI_MSIX_CAP_SIZE;
  }

  private readDword(index: number): number {
    const value = this.regs[index]!;
    if (index === PCI_COMMAND >>> 2) {
      // §4.1.4.5: with MSI-X disabled, Interrupt Status mirrors the OR of the ISR bits.
      const pending = this.isr !== 0 && !this.msix.enabled;
      return (pending ? value | (PCI_STATUS_INTERRUPT << 16) : value) >>> 0;
    }
    return value;
  }

  private afterConfigWrite(index: number, old: number, byteEnable: number): void {
    if (index === PCI_COMMAND >>> 2) {
      this.msix.busMaster = this.busMasterEnabled;
      this.msix.flush();
      this.updateIntx();
    } else if (index === CAP_MSIX >>> 2) {
      const control = this.regs[index]! >>> 16;
      this.msix.enabled = (control & PCI_MSIX_FLAGS_ENABLE) !== 0;
      this.msix.functionMasked = (control & PCI_MSIX_FLAGS_MASKALL) !== 0;
      this.msix.flush();
      this.updateIntx();
    } else if (index === (CAP_PCI_CFG + 16) >>> 2) {
      this.pciCfgWindowWrite(byteEnable);
    }
    void old;
  }

  /** §4.1.4.9: the window's BAR, offset and access length, or undefined (recorded) when invalid. */
  private pciCfgWindow(): { bar: number; offset: number; length: 1 | 2 | 4 } | undefined {
    const bar = this.regs[(CAP_PCI_CFG + 4) >>> 2]! & 0xff;
    const offset = this.regs[(CAP_PCI_CFG + 8) >>> 2]!;
    const length = this.regs[(CAP_PCI_CFG + 12) >>> 2]!;
    if ((length !== 1 && length !== 2 && length !== 4) || offset % length !== 0 || this.bars[bar] === undefined) {
      this.core.report(new DeviceError('INVALID_ACCESS', 'VIRTIO_PCI_CAP_PCI_CFG window with an invalid bar, length or unaligned offset', { offset, size: length }));
      return undefined;
    }
    return { bar, offset, length };
  }

  private pciCfgWindowRead(): void {
    const window = this.pciCfgWindow();
    const index = (CAP_PCI_CFG + 16) >>> 2;
    if (window === undefined) {
      this.regs[index] = 0;
      return;
    }
    // "Upon detecting driver read access to pci_cfg_data, the device MUST execute a read access ... and store the first cap.length bytes in pci_cfg_data."
    this.regs[index] = this.barRead(window.bar, window.offset, window.length) >>> 0;
  }

  private pciCfgWindowWrite(byteEnable: number): void {
    const window = this.pciCfgWindow();
    if (window === undefined) return;
    void byteEnable;
    const data = this.regs[(CAP_PCI_CFG + 16) >>> 2]!;
    const value = window.length === 4 ? data : data & ((1 << (window.length * 8)) - 1);
    // "... the device MUST execute a write access at offset cap.offset at BAR selected by cap.bar using the first cap.length bytes from pci_cfg_data."
    this.barWrite(window.bar, window.offset, window.length, value);
  }

  private barAccessOk(bar: number, offset: number, size: number, op: string): boolean {
    const info = this.bars[bar];
    const ok =
      info !== undefined &&
      (size === 1 || size === 2 || size === 4 || size === 8) &&
      Number.isInteger(offset) &&
      offset >= 0 &&
      offset + size <= info.size &&
      (size !== 8 || offset % 4 === 0);
    if (!ok) this.core.report(new DeviceError('INVALID_ACCESS', `BAR ${op} of an absent BAR, a bad width or past the BAR`, { offset, size }));
    return ok;
  }

  private invalid(offset: number, size: number, message: string): number {
    this.core.report(new DeviceError('INVALID_ACCESS', message, { offset, size }));
    return 0;
  }
}

function configAccessOk(offset: number, size: number): boolean {
  return (size === 1 || size === 2 || size === 4) && Number.isInteger(offset) && offset >= 0 && offset + size <= PCI_CONFIG_SPACE_SIZE && (offset & 3) + size <= 4;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function allOnes(size: number): number {
  return size >= 8 ? 2 ** 64 - 1 : size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
}

/** Little-endian value of up to 8 bytes (exact to 2^53). */
export function littleEndian(bytes: Uint8Array): number {
  let value = 0;
  for (let i = bytes.length - 1; i >= 0; i--) value = value * 256 + bytes[i]!;
  return value;
}

/** Writes `value` little-endian into `bytes` (exact to 2^53). */
export function writeLittleEndian(bytes: Uint8Array, value: number): void {
  let v = value;
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = v % 256;
    v = Math.floor(v / 256);
  }
}
