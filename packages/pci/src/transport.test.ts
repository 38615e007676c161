import { describe, expect, it } from 'vitest';
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_RING_PACKED,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  featureBits,
  negotiateFeatures,
  setDriverOk,
  type Features,
  type VirtioTransport,
  type GuestMemoryAllocator,
} from '@virtio-ts/device';
import type { GuestMemory } from '@virtio-ts/memory';
import type { DriverQueue } from '@virtio-ts/ring';
import { EchoDevice, createMmioHarness, createPciHarness } from './testing/index.js';

const ALL_RING_FEATURES = featureBits(VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED);

interface Rig {
  readonly transport: VirtioTransport;
  readonly memory: GuestMemory;
  /** Runs pending interrupt handling (INTx / mmio line); MSI-X handlers already ran. */
  readonly service: () => void;
}

function pciRig(device: EchoDevice, intx = false): Rig {
  const h = createPciHarness(device, { intx });
  return {
    transport: h.transport,
    memory: h.memory,
    service: () => {
      while (h.intx.asserted) h.transport.handleIntx();
    },
  };
}

function mmioRig(device: EchoDevice): Rig {
  const h = createMmioHarness(device);
  return {
    transport: h.transport,
    memory: h.memory,
    service: () => {
      while (h.line.asserted) h.transport.handleInterrupt();
    },
  };
}

/** Drives `rounds` echo requests through queue 0 and checks every byte that came back. */
function echoRoundTrip(rig: Rig, device: EchoDevice, wanted: Features, segments: number, indirect = false): { interrupts: number; queue: DriverQueue<number> } {
  const { transport, memory } = rig;
  const negotiated = negotiateFeatures(transport, wanted);
  expect(negotiated).toBe((wanted | featureBits(VIRTIO_F_VERSION_1)) & transport.getDeviceFeatures());
  let interrupts = 0;
  const queue = transport.setupQueue<number>(0, { size: 16, onInterrupt: () => interrupts++ });
  setDriverOk(transport);
  expect(transport.getStatus() & VIRTIO_CONFIG_S_DRIVER_OK).toBe(VIRTIO_CONFIG_S_DRIVER_OK);
  // The device received a queue built with the negotiated ring features.
  const deviceQueue = device.context?.queues[0];
  expect(deviceQueue?.layout).toBe((negotiated & featureBits(VIRTIO_F_RING_PACKED)) !== 0n ? 'packed' : 'split');
  expect(deviceQueue?.features.eventIdx).toBe((negotiated & featureBits(VIRTIO_RING_F_EVENT_IDX)) !== 0n);
  expect(deviceQueue?.features.indirect).toBe((negotiated & featureBits(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n);

  const out = transport.allocator.allocate(64 * segments, 16);
  const back = transport.allocator.allocate(64 * segments, 16);
  let completed = 0;
  for (let round = 0; round < 40; round++) {
    const payload = Uint8Array.from({ length: 64 * segments }, (_, i) => (i * 7 + round) & 0xff);
    memory.write(out, payload);
    memory.fill(back, 64 * segments);
    const readable = Array.from({ length: segments }, (_, i) => ({ address: out + i * 64, length: 64 }));
    const writable = Array.from({ length: segments }, (_, i) => ({ address: back + i * 64, length: 64 }));
    queue.add(readable, writable, round);
    // §2.7.5.3 / §2.8.7: with indirect descriptors the whole chain takes one ring slot.
    expect(queue.size - queue.freeCount).toBe(indirect ? 1 : 2 * segments);
    if (queue.kickPrepare()) transport.notify(0);
    rig.service();
    for (let used = queue.getUsed(); used !== null; used = queue.getUsed()) {
      expect(used.token).toBe(round);
      expect(used.length).toBe(64 * segments);
      const got = new Uint8Array(64 * segments);
      memory.read(back, got);
      expect(got).toEqual(payload);
      completed++;
    }
  }
  expect(completed).toBe(40);
  expect(device.completed).toBe(40);
  expect(device.ringErrors).toBe(0);
  return { interrupts, queue };
}

const transports = [
  { name: 'virtio-pci (MSI-X)', make: (d: EchoDevice) => pciRig(d) },
  { name: 'virtio-pci (INTx)', make: (d: EchoDevice) => pciRig(d, true) },
  { name: 'virtio-mmio', make: mmioRig },
] as const;

describe.each(transports)('$name: echo device end to end', ({ make }) => {
  for (const packed of [false, true]) {
    for (const eventIdx of [false, true]) {
      for (const indirect of [false, true]) {
        const name = `${packed ? 'packed' : 'split'}, event idx ${eventIdx ? 'on' : 'off'}, indirect ${indirect ? 'on' : 'off'}`;
        it(`3.1.1 + 2.7/2.8: ${name}`, () => {
          const device = new EchoDevice({ features: ALL_RING_FEATURES });
          const wanted = (packed ? featureBits(VIRTIO_F_RING_PACKED) : 0n) | (eventIdx ? featureBits(VIRTIO_RING_F_EVENT_IDX) : 0n) | (indirect ? featureBits(VIRTIO_RING_F_INDIRECT_DESC) : 0n);
          const { interrupts } = echoRoundTrip(make(device), device, wanted, 3, indirect);
          // One request in flight at a time: every completion is signalled.
          expect(interrupts).toBe(40);
        });
      }
    }
  }

  it('2.5.1/2.5.2: a configuration change reaches the driver, and reads are consistent with config_generation', () => {
    const device = new EchoDevice();
    const rig = make(device);
    negotiateFeatures(rig.transport, 0n);
    let changes = 0;
    rig.transport.onConfigChange(() => changes++);
    rig.transport.setupQueue(0);
    setDriverOk(rig.transport);
    const g0 = rig.transport.getConfigGeneration();
    device.bumpConfig();
    rig.service();
    expect(changes).toBe(1);
    const counter = new DataView(rig.transport.readConfig(0, 4).buffer).getUint32(0, true);
    expect(counter).toBe(1);
    expect(rig.transport.getConfigGeneration()).not.toBe(g0);
    rig.transport.writeConfig(4, Uint8Array.of(1, 2, 3, 4));
    rig.transport.writeConfig(0, Uint8Array.of(9)); // read-only byte: ignored by the device
    expect([...rig.transport.readConfig(0, 8)]).toEqual([1, 0, 0, 0, 1, 2, 3, 4]);
  });

  it('2.4: reset releases the queues; the device can be set up again and works', () => {
    const device = new EchoDevice({ features: ALL_RING_FEATURES });
    const rig = make(device);
    const allocator = rig.transport.allocator as GuestMemoryAllocator;
    const before = allocator.freeBytes;
    echoRoundTrip(rig, device, featureBits(VIRTIO_F_RING_PACKED), 1);
    rig.transport.reset();
    expect(device.context).toBeUndefined();
    expect(rig.transport.getStatus()).toBe(0);
    // The ring areas went back to the allocator; only the two 64-byte test buffers stay allocated.
    expect(allocator.freeBytes).toBe(before - 128);
    device.completed = 0;
    echoRoundTrip(rig, device, featureBits(VIRTIO_RING_F_EVENT_IDX), 2);
  });

  it('2.1.2: a broken ring sets DEVICE_NEEDS_RESET and the driver gets a configuration change', () => {
    const device = new EchoDevice();
    const rig = make(device);
    negotiateFeatures(rig.transport, 0n);
    let changes = 0;
    rig.transport.onConfigChange(() => changes++);
    rig.transport.setupQueue(0, { size: 16 });
    setDriverOk(rig.transport);
    device.context!.markNeedsReset('test');
    rig.service();
    expect(rig.transport.getStatus() & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_NEEDS_RESET);
    expect(changes).toBe(1);
  });
});

describe('event index suppression over virtio-pci', () => {
  it('2.7.10: with VIRTIO_RING_F_EVENT_IDX and callbacks disabled the device does not interrupt', () => {
    const device = new EchoDevice({ features: ALL_RING_FEATURES });
    const rig = pciRig(device);
    negotiateFeatures(rig.transport, featureBits(VIRTIO_RING_F_EVENT_IDX));
    let interrupts = 0;
    const queue = rig.transport.setupQueue<number>(0, { size: 16, onInterrupt: () => interrupts++ });
    setDriverOk(rig.transport);
    queue.disableCallback();
    const buffer = rig.transport.allocator.allocate(32, 16);
    for (let i = 0; i < 5; i++) {
      queue.add([{ address: buffer, length: 16 }], [{ address: buffer + 16, length: 16 }], i);
      if (queue.kickPrepare()) rig.transport.notify(0);
    }
    expect(device.completed).toBe(5);
    expect(interrupts).toBe(0);
    let n = 0;
    while (queue.getUsed() !== null) n++;
    expect(n).toBe(5);
  });
});
