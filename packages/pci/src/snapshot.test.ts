import fc from 'fast-check';
import { GuestMemory } from '@virtio-ts/memory';
import {
  DeviceError,
  GuestMemoryAllocator,
  VIRTIO_F_RING_PACKED,
  VIRTIO_RING_F_EVENT_IDX,
  featureBits,
  negotiateFeatures,
  setDriverOk,
  type VirtioTransport,
} from '@virtio-ts/device';
import type { DriverQueue } from '@virtio-ts/ring';
import { describe, expect, it } from 'vitest';
import { BumpAddressSpaceAllocator, DirectMsiController, PciBus } from './pci-bus.js';
import type { MmioAccessor, PciConfigAccessor } from './platform.js';
import { EchoDevice } from './testing/index.js';
import { VirtioMmioDevice } from './virtio-mmio-device.js';
import { VirtioMmioTransport } from './virtio-mmio-transport.js';
import { VirtioPciDevice } from './virtio-pci-device.js';
import { VirtioPciTransport } from './virtio-pci-transport.js';

function echoOnce(transport: VirtioTransport, memory: GuestMemory, queue: DriverQueue<number>, buffer: number, token: number, service: () => void): void {
  memory.write(buffer, Uint8Array.of(token, token + 1, token + 2, token + 3));
  queue.add([{ address: buffer, length: 4 }], [{ address: buffer + 4, length: 4 }], token);
  if (queue.kickPrepare()) transport.notify(0);
  service();
  expect(queue.getUsed()).toEqual({ token, length: 4 });
  expect([...memory.slice(buffer + 4, 4)]).toEqual([token, token + 1, token + 2, token + 3]);
}

describe('transport snapshots: a running device moves to a new instance mid-session', () => {
  for (const packed of [false, true]) {
    it(`virtio-pci, ${packed ? 'packed' : 'split'}: saveState → JSON → restoreState, and the driver carries on`, () => {
      const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
      const msi = new DirectMsiController();
      const features = featureBits(VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_RING_PACKED);
      const first = new VirtioPciDevice({ device: new EchoDevice({ features }), memory, msi });
      let bus = new PciBus();
      bus.attach(first);
      const mmio: MmioAccessor = { read: (a, s) => bus.read(a, s), write: (a, s, v) => bus.write(a, s, v) };
      const config: PciConfigAccessor = { read: (o, s) => bus.configAccessor(0).read(o, s), write: (o, s, v) => bus.configAccessor(0).write(o, s, v) };
      const allocator = new GuestMemoryAllocator(memory, 0x10000, 0x100000);
      const transport = VirtioPciTransport.probe({ config, mmio, addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 1 << 28), memory, allocator, msi });
      negotiateFeatures(transport, packed ? features : featureBits(VIRTIO_RING_F_EVENT_IDX));
      let interrupts = 0;
      const queue = transport.setupQueue<number>(0, { size: 16, onInterrupt: () => interrupts++ });
      setDriverOk(transport);
      const buffer = allocator.allocate(8);
      for (let i = 0; i < 5; i++) echoOnce(transport, memory, queue, buffer, i, () => undefined);

      const saved: unknown = JSON.parse(JSON.stringify(first.saveState()));
      const echo = new EchoDevice({ features });
      const second = new VirtioPciDevice({ device: echo, memory, msi });
      second.restoreState(saved);
      bus = new PciBus();
      bus.attach(second);
      expect(second.barAddress(0)).toBe(first.barAddress(0));
      expect(echo.context?.queues[0]?.layout).toBe(packed ? 'packed' : 'split');
      for (let i = 5; i < 25; i++) echoOnce(transport, memory, queue, buffer, i, () => undefined);
      expect(echo.completed).toBe(20);
      expect(interrupts).toBe(25);
    });
  }

  it('virtio-mmio: saveState → JSON → restoreState, and the driver carries on', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
    const line = { asserted: false };
    let device = new VirtioMmioDevice({ device: new EchoDevice(), memory, interrupt: { setLevel: (l) => (line.asserted = l) } });
    const base = 0xd000_0000;
    const mmio: MmioAccessor = { read: (a, s) => device.mmioRead(a - base, s), write: (a, s, v) => device.mmioWrite(a - base, s, v) };
    const allocator = new GuestMemoryAllocator(memory, 0x10000, 0x100000);
    const transport = VirtioMmioTransport.probe({ mmio, base, memory, allocator });
    negotiateFeatures(transport, featureBits(VIRTIO_RING_F_EVENT_IDX));
    const queue = transport.setupQueue<number>(0, { size: 16 });
    setDriverOk(transport);
    const buffer = allocator.allocate(8);
    const service = () => {
      while (line.asserted) transport.handleInterrupt();
    };
    for (let i = 0; i < 3; i++) echoOnce(transport, memory, queue, buffer, i, service);
    const saved: unknown = JSON.parse(JSON.stringify(device.saveState()));
    device = new VirtioMmioDevice({ device: new EchoDevice(), memory, interrupt: { setLevel: (l) => (line.asserted = l) } });
    device.restoreState(saved);
    for (let i = 3; i < 10; i++) echoOnce(transport, memory, queue, buffer, i, service);
  });

  it('H16: a mutated virtio-pci snapshot restores or throws INVALID_STATE, and read-only config bits never change', () => {
    const memory = GuestMemory.create([{ guestAddress: 0, size: 4 << 20 }]);
    const first = new VirtioPciDevice({ device: new EchoDevice(), memory });
    first.configWrite(0x04, 2, 0x6);
    first.configWrite(0x98 + 2, 2, 0x8000);
    const good = JSON.parse(JSON.stringify(first.saveState())) as Record<string, unknown>;
    const paths: string[][] = [];
    const collect = (value: unknown, path: string[]) => {
      if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) collect(v, [...path, k]);
      else paths.push(path);
    };
    collect(good, []);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: paths.length - 1 }), fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constant(-1), fc.string(), fc.constant(null))), { minLength: 1, maxLength: 3 }),
        (mutations) => {
          const state = structuredClone(good);
          for (const [i, value] of mutations) {
            const path = paths[i]!;
            let target = state;
            for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
            target[path[path.length - 1]!] = value;
          }
          const device = new VirtioPciDevice({ device: new EchoDevice(), memory });
          try {
            device.restoreState(state);
          } catch (error) {
            expect(DeviceError.isInstance(error) && error.code === 'INVALID_STATE').toBe(true);
          }
          expect(device.configRead(0, 4)).toBe(0x107f_1af4);
          expect(device.configRead(0x34, 1)).toBe(0x40);
        },
      ),
      { numRuns: 200 },
    );
  });
});
