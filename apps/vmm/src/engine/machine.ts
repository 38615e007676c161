import { VIRTIO_CONFIG_S_NEEDS_RESET, type VirtioDevice } from '@virtio-ts/device';
import { GuestMemory } from '@virtio-ts/memory';
import { PciBus, type MsiSink } from '@virtio-ts/pci';
import { parseIpv4Cidr } from '../config/net.js';
import { guestDisks, type DeviceConfig, type VmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import { MmioBus } from '../machine/bus.js';
import { DoorbellTable, MAX_DOORBELLS, type DoorbellRegistration } from '../machine/doorbells.js';
import { raiseInterrupt } from '../machine/interrupt-lines.js';
import { decodeMsi } from '../machine/msi.js';
import type { BootDevice, BootDisk, BootInfo } from './boot-info.js';
import { PLATFORM_CONTROL_BASE, PLATFORM_CONTROL_SIZE, WORKLOAD_BEGIN, WORKLOAD_END, PCI_MMIO_BASE, PCI_MMIO_SIZE, PCI_SLOTS, RAM_RESERVED_LOW, VIRTIO_MMIO_BASE, VIRTIO_MMIO_WINDOW } from './layout.js';
import { createSharedState, type SharedState } from './shared-state.js';
import { pciSlot, type TransportSlot } from './transport-slot.js';
import { mmioSlot } from './transport-slot-mmio.js';

/** Vector of a virtio-mmio device's line interrupt: 32 + device index (below the MSI-X range). */
export const MMIO_LINE_VECTOR_BASE = 32;
/** Handler faults kept with their message; later ones are only counted. */
export const MAX_RECORDED_FAULTS = 100;
/** Devices one machine holds: the PCI slots of bus 0, and line vectors 32..63 for virtio-mmio. */
export const MAX_DEVICES = 32;

/** One device of the machine: its config, its model, its transport, and who drives it. */
export interface MachineDevice {
  readonly index: number;
  readonly name: string;
  readonly config: DeviceConfig;
  readonly device: VirtioDevice;
  readonly slot: TransportSlot;
  /** The vCPU whose kernel drives the device. */
  readonly owner: number;
  /** Doorbell of queue q is `doorbellBase + q`. */
  readonly doorbellBase: number;
}

/** Where a device's interrupts go: into the vCPU's interrupt words, or straight into an inline kernel. */
export type InterruptSink = (vcpu: number, vector: number) => void;

/**
 * The VMM side of the model guest: guest RAM, the MMIO bus (PCI ECAM and BARs, virtio-mmio
 * windows), the devices with their transports, the ioeventfd table and the interrupt routing.
 * Everything here runs on the VMM's I/O thread. Build with {@link Machine.create}; nothing
 * the guest does makes a method throw.
 */
export class Machine {
  readonly memory: GuestMemory;
  readonly shared: SharedState;
  readonly bus: MmioBus;
  readonly devices: MachineDevice[] = [];
  readonly boot: BootInfo[];
  readonly doorbellSlots: number;
  /** Interrupts injected into vCPUs. */
  interrupts = 0;
  /** MSI writes to an address that is not an interrupt address, or to a vCPU that does not exist. */
  strayMessages = 0;
  /** Device handler faults (a register access or a doorbell delivery that threw); the bus answered all ones. */
  faultCount = 0;
  /** The first {@link MAX_RECORDED_FAULTS} of them (a guest can cause any number: the record is bounded). */
  readonly faults: { device: string; message: string }[] = [];
  private readonly doorbellTable: DoorbellTable;
  private readonly doorbellWords: Int32Array;
  private readonly interruptWords: Int32Array;
  private readonly doorbellTargets: { device: MachineDevice; queue: number }[] = [];
  /** Where interrupts go; the inline engine replaces it with direct dispatch. */
  interruptSink: InterruptSink;
  /** Called at the guest's workload boundaries (platform control register writes). */
  onWorkloadBoundary: (boundary: 'begin' | 'end', workload: number) => void = () => {};

  private constructor(
    readonly config: VmConfig,
    createDevice: (config: DeviceConfig, index: number) => VirtioDevice,
    seeds: readonly number[],
    linger: boolean,
  ) {
    if (config.devices.length > MAX_DEVICES) throw new VmmError('INVALID_CONFIG', `a machine holds at most ${MAX_DEVICES} devices`, { field: 'devices' });
    this.memory = GuestMemory.create([{ guestAddress: 0, size: config.memory }]);
    const ram = this.memory.regions[0]!.buffer;
    if (!(ram instanceof SharedArrayBuffer)) throw new VmmError('INTERNAL', 'guest RAM must be a SharedArrayBuffer to be shared with vCPU workers');
    this.shared = createSharedState(ram, config.vcpus);
    this.doorbellTable = new DoorbellTable(this.shared.doorbellTable);
    this.doorbellWords = new Int32Array(this.shared.doorbells);
    this.interruptWords = new Int32Array(this.shared.interrupts);
    this.interruptSink = (vcpu, vector) => raiseInterrupt(this.interruptWords, vcpu, vector);
    this.bus = new MmioBus((name, error) => this.recordFault(name, error));

    this.bus.map(PLATFORM_CONTROL_BASE, PLATFORM_CONTROL_SIZE, 'platform control', {
      read: () => 0,
      write: (offset, _size, value) => {
        if (value >= config.workloads.length) return; // not a workload: ignored, as an unknown register write
        if (offset === WORKLOAD_BEGIN) this.onWorkloadBoundary('begin', value);
        else if (offset === WORKLOAD_END) this.onWorkloadBoundary('end', value);
      },
    });
    const pciBus = new PciBus();
    this.bus.map(PCI_MMIO_BASE, PCI_MMIO_SIZE, 'PCI memory window', {
      read: (offset, size) => pciBus.read(PCI_MMIO_BASE + offset, size),
      write: (offset, size, value) => pciBus.write(PCI_MMIO_BASE + offset, size, value),
    });
    const msi: MsiSink = {
      deliver: (address, data) => {
        const target = decodeMsi(address, data);
        if (target === undefined || target.vcpu >= config.vcpus) {
          this.strayMessages++;
          return;
        }
        this.inject(target.vcpu, target.vector);
      },
    };

    let doorbell = 0;
    config.devices.forEach((deviceConfig, index) => {
      const device = createDevice(deviceConfig, index);
      const name = `${deviceConfig.type}${config.devices.slice(0, index).filter((d) => d.type === deviceConfig.type).length}`;
      const owner = index % config.vcpus;
      const base = { device, memory: this.memory, name, onConfigWrite: () => this.refreshDoorbells() };
      const slot =
        config.transport === 'pci'
          ? pciSlot({ ...base, slot: index, pciBus, msi })
          : mmioSlot({
              ...base,
              base: VIRTIO_MMIO_BASE + index * VIRTIO_MMIO_WINDOW,
              line: { setLevel: (asserted) => (asserted ? this.inject(owner, MMIO_LINE_VECTOR_BASE + index) : undefined) },
            });
      for (const window of slot.windows) this.bus.map(window.base, window.length, window.name, window.handler);
      const entry: MachineDevice = { index, name, config: deviceConfig, device, slot, owner, doorbellBase: doorbell };
      for (let q = 0; q < slot.core.numQueues; q++) this.doorbellTargets.push({ device: entry, queue: q });
      doorbell += slot.core.numQueues;
      if (doorbell > MAX_DOORBELLS) throw new VmmError('INVALID_CONFIG', `the devices have more than ${MAX_DOORBELLS} queues`, { field: 'devices' });
      this.devices.push(entry);
    });
    this.doorbellSlots = doorbell;
    if (config.transport === 'pci' && config.devices.length > PCI_SLOTS) throw new VmmError('INVALID_CONFIG', `bus 0 has ${PCI_SLOTS} slots`, { field: 'devices' });
    this.refreshDoorbells();
    this.boot = this.bootInfos(seeds, linger);
  }

  /**
   * Builds the machine. `createDevice` makes each device model (and may throw for a bad device
   * config: then nothing has been started). `seeds` gives each workload's data seed; `linger`
   * keeps the vCPUs running after their workloads until released (a multi-VM run).
   */
  static create(config: VmConfig, createDevice: (config: DeviceConfig, index: number) => VirtioDevice, seeds: readonly number[], linger = false): Machine {
    return new Machine(config, createDevice, seeds, linger);
  }

  /** Injects `vector` into `vcpu` (MSI or line interrupt). */
  inject(vcpu: number, vector: number): void {
    this.interrupts++;
    this.interruptSink(vcpu, vector);
  }

  /** A rung doorbell: delivers the queue notification to the device. */
  ringDoorbell(slot: number): void {
    const target = this.doorbellTargets[slot];
    if (target === undefined) return;
    try {
      target.device.slot.notifyQueue(target.queue);
    } catch (error) {
      this.recordFault(target.device.name, error);
    }
  }

  private recordFault(device: string, error: unknown): void {
    this.faultCount++;
    if (this.faults.length < MAX_RECORDED_FAULTS) this.faults.push({ device, message: error instanceof Error ? error.message : String(error) });
  }

  /** Rewrites the ioeventfd table from every transport's current notify addresses. */
  refreshDoorbells(): void {
    const registrations: DoorbellRegistration[] = [];
    for (const device of this.devices) {
      for (const n of device.slot.notifyAddresses()) {
        registrations.push({ address: n.address, size: n.size, datamatch: n.datamatch, slot: device.doorbellBase + n.queue });
      }
    }
    this.doorbellTable.publish(registrations);
  }

  /** DEVICE_NEEDS_RESET (and why) for each device that has it set now. */
  needsReset(device: MachineDevice): string | undefined {
    const core = device.slot.core;
    if ((core.status & VIRTIO_CONFIG_S_NEEDS_RESET) === 0) return undefined;
    return core.lastError?.message ?? 'DEVICE_NEEDS_RESET';
  }

  private bootInfos(seeds: readonly number[], linger: boolean): BootInfo[] {
    const config = this.config;
    const disks: BootDisk[] = guestDisks(config).map((d) => ({ device: d.device, ...(d.lun === undefined ? {} : { scsi: { target: d.lun.target, lun: d.lun.lun } }) }));
    const nets = this.devices.filter((d) => d.config.type === 'net');
    const bootDevices: BootDevice[] = this.devices.map((d) => {
      const cidr = d.config.type === 'net' ? parseIpv4Cidr(d.config.ip) : undefined;
      return {
        index: d.index,
        kind: d.config.type,
        owner: d.owner,
        transport: config.transport,
        base: d.slot.windows[0]!.base,
        vector: config.transport === 'mmio' ? MMIO_LINE_VECTOR_BASE + d.index : undefined,
        ...(d.config.type === 'net' && cidr !== undefined && typeof cidr !== 'string'
          ? { net: { number: nets.indexOf(d), address: cidr.address, prefixLength: cidr.prefixLength, queuePairs: d.config.queues } }
          : {}),
      };
    });
    const ownerOf = (workload: VmConfig['workloads'][number]): number => {
      if (workload.type === 'verify' || workload.type === 'bench') return this.devices[disks[workload.disk]!.device]!.owner;
      if (workload.type === 'ping' || workload.type === 'udp-echo' || workload.type === 'net-bench') return nets[workload.net]!.owner;
      return this.devices.find((d) => d.config.type === workload.type)!.owner;
    };
    const heapShare = Math.floor((config.memory - RAM_RESERVED_LOW) / config.vcpus / 4096) * 4096;
    const windowShare = Math.floor(PCI_MMIO_SIZE / config.vcpus / 0x10_0000) * 0x10_0000;
    return Array.from({ length: config.vcpus }, (_, vcpu) => ({
      vcpu,
      vcpus: config.vcpus,
      memorySize: config.memory,
      heap: { base: RAM_RESERVED_LOW + vcpu * heapShare, length: heapShare },
      pciWindow: { base: PCI_MMIO_BASE + vcpu * windowShare, length: windowShare },
      ring: config.ring,
      eventIdx: config.eventIdx,
      indirect: config.indirect,
      queueSize: config.queueSize,
      devices: bootDevices.filter((d) => d.owner === vcpu),
      workloads: config.workloads.flatMap((w, index) => (ownerOf(w) === vcpu ? [{ index, config: w, seed: seeds[index] ?? index }] : [])),
      disks,
      linger,
    }));
  }
}
