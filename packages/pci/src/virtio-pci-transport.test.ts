import { GuestMemory } from '@virtio-ts/memory';
import { GuestMemoryAllocator, negotiateFeatures, setDriverOk, VIRTIO_F_NOTIFICATION_DATA, featureBits } from '@virtio-ts/device';
import { describe, expect, it } from 'vitest';
import { BumpAddressSpaceAllocator, DirectMsiController, PciBus } from './pci-bus.js';
import { PciError } from './errors.js';
import type { PciConfigAccessor } from './platform.js';
import { EchoDevice } from './testing/index.js';
import { VirtioPciDevice } from './virtio-pci-device.js';
import { VirtioPciTransport } from './virtio-pci-transport.js';

/** A configuration space we write by hand: bytes, with BAR registers that size like real ones. */
function fakeConfig(bytes: Uint8Array): PciConfigAccessor {
  const view = new DataView(bytes.buffer);
  return {
    read: (offset, size) => (size === 1 ? view.getUint8(offset) : size === 2 ? view.getUint16(offset, true) : view.getUint32(offset, true)),
    write: (offset, size, value) => {
      if (offset === 0x04 && size === 2) view.setUint16(4, value, true);
    },
  };
}

function header(deviceId = 0x1042): Uint8Array {
  const bytes = new Uint8Array(256);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 0x1af4, true);
  view.setUint16(2, deviceId, true);
  view.setUint16(6, 0x10, true);
  return bytes;
}

function probe(config: PciConfigAccessor) {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  return VirtioPciTransport.probe({
    config,
    mmio: { read: () => 0, write: () => undefined },
    addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 1 << 28),
    memory,
    allocator: new GuestMemoryAllocator(memory, 0x1000, 0x10000),
  });
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (PciError.isInstance(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('VirtioPciTransport.probe: only through the configuration accessor', () => {
  it('4.1.2: refuses other vendors, transitional (legacy) ids and device id 0x1040', () => {
    for (const [vendor, device] of [
      [0x8086, 0x1042],
      [0x1af4, 0x1001],
      [0x1af4, 0x1040],
      [0xffff, 0xffff],
    ]) {
      const bytes = header(device);
      new DataView(bytes.buffer).setUint16(0, vendor!, true);
      expect(codeOf(() => probe(fakeConfig(bytes)))).toBe('NOT_VIRTIO');
    }
  });

  it('4.1.4: a capability list that loops, points into the header, or lacks COMMON_CFG is refused', () => {
    const loop = header();
    loop[0x34] = 0x40;
    loop[0x40] = 0x09;
    loop[0x41] = 0x40; // points at itself
    expect(codeOf(() => probe(fakeConfig(loop)))).toBe('INVALID_CAPABILITY');
    const intoHeader = header();
    intoHeader[0x34] = 0x10;
    expect(codeOf(() => probe(fakeConfig(intoHeader)))).toBe('INVALID_CAPABILITY');
    const empty = header();
    expect(codeOf(() => probe(fakeConfig(empty)))).toBe('INVALID_CAPABILITY');
    const noList = header();
    noList[6] = 0;
    expect(codeOf(() => probe(fakeConfig(noList)))).toBe('INVALID_CAPABILITY');
  });

  it('4.1.4: "The driver MUST ignore any vendor-specific capability structure which has a reserved bar value" — and reserved cfg_types', () => {
    // Our device's config space, with a decoy capability put in front: reserved bar 7.
    const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
    const device = new VirtioPciDevice({ device: new EchoDevice(), memory });
    const bus = new PciBus();
    const slot = bus.attach(device);
    const real = bus.configAccessor(slot);
    const decoyAt = 0xc0; // free space after the MSI-X capability
    const decoy = new Uint8Array(20);
    decoy.set([0x09, 0x00, 20, 1 /* COMMON */, 7 /* reserved bar */]);
    const decoy2At = 0xd8;
    const decoy2 = new Uint8Array(16);
    decoy2.set([0x09, 0x00, 16, 0x42 /* reserved type */, 0]);
    const wrapped: PciConfigAccessor = {
      read: (offset, size) => {
        if (offset === 0x34) return decoyAt;
        const inside = (at: number, bytes: Uint8Array, next: number) => {
          if (offset < at || offset >= at + bytes.length) return undefined;
          const copy = bytes.slice();
          copy[1] = next;
          let v = 0;
          for (let i = size - 1; i >= 0; i--) v = v * 256 + copy[offset - at + i]!;
          return v;
        };
        return inside(decoyAt, decoy, decoy2At) ?? inside(decoy2At, decoy2, real.read(0x34, 1)) ?? real.read(offset, size);
      },
      write: (offset, size, value) => real.write(offset, size, value),
    };
    const msi = new DirectMsiController();
    const transport = VirtioPciTransport.probe({
      config: wrapped,
      mmio: bus,
      addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 1 << 28),
      memory,
      allocator: new GuestMemoryAllocator(memory, 0x10000, 0x100000),
      msi,
    });
    expect(transport.common.bar).toBe(0);
    negotiateFeatures(transport, 0n);
    transport.setupQueue(0);
    setDriverOk(transport);
    expect(device.core.live).toBe(true);
  });

  it('falls back to a shared queue vector when the MSI-X table is small, and to INTx with a single vector', () => {
    for (const vectors of [2, 1]) {
      const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
      const echo = new EchoDevice({ queueSizes: [16, 16, 16] });
      const intx = { level: false };
      const msi = new DirectMsiController();
      const device = new VirtioPciDevice({ device: echo, memory, msi, msixVectors: vectors, intx: { setLevel: (l) => (intx.level = l) } });
      const bus = new PciBus();
      const slot = bus.attach(device);
      const allocator = new GuestMemoryAllocator(memory, 0x10000, 0x100000);
      const transport = VirtioPciTransport.probe({ config: bus.configAccessor(slot), mmio: bus, addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 1 << 28), memory, allocator, msi });
      expect(transport.usesMsix).toBe(vectors >= 2);
      negotiateFeatures(transport, 0n);
      let hits = 0;
      const queue = transport.setupQueue<number>(2, { size: 16, onInterrupt: () => hits++ });
      setDriverOk(transport);
      const buffer = allocator.allocate(16);
      queue.add([{ address: buffer, length: 8 }], [{ address: buffer + 8, length: 8 }], 1);
      transport.notify(2);
      if (!transport.usesMsix) {
        expect(intx.level).toBe(true);
        transport.handleIntx();
        expect(intx.level).toBe(false);
      }
      expect(hits).toBe(1);
      expect(queue.getUsed()).toEqual({ token: 1, length: 8 });
    }
  });

  it('refuses to accept VIRTIO_F_NOTIFICATION_DATA (it notifies with the queue index only)', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
    const device = new VirtioPciDevice({ device: new EchoDevice({ features: featureBits(VIRTIO_F_NOTIFICATION_DATA) }), memory });
    const bus = new PciBus();
    const transport = VirtioPciTransport.probe({
      config: bus.configAccessor(bus.attach(device)),
      mmio: bus,
      addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 1 << 28),
      memory,
      allocator: new GuestMemoryAllocator(memory, 0x10000, 0x100000),
    });
    expect(() => negotiateFeatures(transport, featureBits(VIRTIO_F_NOTIFICATION_DATA))).toThrow(/UNSUPPORTED/);
  });
});
