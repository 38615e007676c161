import { BlkDevice } from '@virtio-ts/backends';
import { MemoryDisk } from '@virtio-ts/backends/testing';
import { featureBits, negotiateFeatures, setDriverOk, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '@virtio-ts/device';
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../config/schema.js';
import { GuestKernel } from '../guest/guest-kernel.js';
import { probeTransports } from '../guest/attach-devices.js';
import { Machine } from './machine.js';

const VIRTIO_BLK_T_IN = 0;
const VIRTIO_BLK_T_OUT = 1;

/**
 * The machine's mechanics without a front-end driver: the guest kernel probes the transport
 * through the bus (ECAM/BARs or the virtio-mmio window), negotiates, sets up a queue, and sends
 * raw virtio-blk requests; completions come back as interrupts through the MSI/line routing.
 */
describe.each([
  ['pci', 'split'],
  ['pci', 'packed'],
  ['mmio', 'split'],
  ['mmio', 'packed'],
] as const)('Machine over virtio-%s, %s ring (inline dispatch)', (transport, ring) => {
  it('carries a blk write and read through exits, the device and an interrupt', async () => {
    const config = parseVmConfig({ transport, ring, dispatch: 'inline', memory: '32M', devices: [{ type: 'blk', size: '1M' }] });
    const disk = new MemoryDisk({ size: 1 << 20 });
    const machine = Machine.create(config, () => new BlkDevice({ driver: disk, packed: ring === 'packed' }), []);
    const boot = machine.boot[0]!;
    const kernel = new GuestKernel(0, machine.memory, machine.bus, boot.heap);
    machine.interruptSink = (_vcpu, vector) => queueMicrotask(() => kernel.dispatch(vector));
    const [device] = [...probeTransports(kernel, boot).values()];
    const features = negotiateFeatures(
      device!,
      featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC) | (ring === 'packed' ? featureBits(VIRTIO_F_RING_PACKED) : 0n),
    );
    expect((features & featureBits(VIRTIO_F_RING_PACKED)) !== 0n).toBe(ring === 'packed');
    let interrupted = 0;
    const queue = device!.setupQueue<string>(0, { onInterrupt: () => interrupted++ });
    setDriverOk(device!);
    expect(queue.layout).toBe(ring);

    const memory = machine.memory;
    const header = kernel.allocator.allocate(16, 16);
    const data = kernel.allocator.allocate(4096, 4096);
    const status = kernel.allocator.allocate(1, 1);
    const request = async (type: number, sector: number, token: string): Promise<number> => {
      memory.writeU32(header, type);
      memory.writeU32(header + 4, 0);
      memory.writeU64(header + 8, BigInt(sector));
      memory.writeU8(status, 0xff);
      const readable = [{ address: header, length: 16 }];
      const dataSegment = { address: data, length: 4096 };
      if (type === VIRTIO_BLK_T_OUT) queue.add([...readable, dataSegment], [{ address: status, length: 1 }], token);
      else queue.add(readable, [dataSegment, { address: status, length: 1 }], token);
      const before = interrupted;
      if (queue.kickPrepare()) device!.notify(0);
      for (let i = 0; i < 1000 && interrupted === before; i++) await new Promise((r) => setTimeout(r, 1));
      const used = queue.getUsed();
      expect(used?.token).toBe(token);
      return memory.readU8(status);
    };
    memory.fill(data, 4096, 0x5a);
    expect(await request(VIRTIO_BLK_T_OUT, 8, 'write')).toBe(0);
    memory.fill(data, 4096, 0);
    expect(await request(VIRTIO_BLK_T_IN, 8, 'read')).toBe(0);
    expect(memory.slice(data, 4096).every((b) => b === 0x5a)).toBe(true);
    const onDisk = new Uint8Array(4096);
    await disk.read(8 * 512, onDisk);
    expect(onDisk.every((b) => b === 0x5a)).toBe(true);
    expect(machine.interrupts).toBeGreaterThanOrEqual(2);
    expect(machine.bus.exits).toBeGreaterThan(20);
    expect(machine.needsReset(machine.devices[0]!)).toBeUndefined();
    if (transport === 'pci') expect(machine.boot[0]!.devices[0]!.vector).toBeUndefined();
  });
});
