import { GuestMemory } from '@virtio-ts/memory';
import { GuestMemoryAllocator, featureBits, negotiateFeatures, setDriverOk, VIRTIO_RING_F_EVENT_IDX } from '@virtio-ts/device';
import { expect, it } from 'vitest';
import { BumpAddressSpaceAllocator, DirectMsiController, PciBus, VirtioPciDevice, VirtioPciTransport } from './index.js';
import { EchoDevice } from './testing/index.js';

it('README example runs', () => {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 8 << 20 }]);
  const msi = new DirectMsiController();
  const bus = new PciBus();
  const slot = bus.attach(new VirtioPciDevice({ device: new EchoDevice({ features: featureBits(VIRTIO_RING_F_EVENT_IDX) }), memory, msi }));
  const allocator = new GuestMemoryAllocator(memory, 0x10000, 0x100000);
  const transport = VirtioPciTransport.probe({
    config: bus.configAccessor(slot),
    mmio: bus,
    addressSpace: new BumpAddressSpaceAllocator(0xc000_0000, 1 << 28),
    memory,
    allocator,
    msi,
  });
  negotiateFeatures(transport, featureBits(VIRTIO_RING_F_EVENT_IDX));
  let notifications = 0;
  const queue = transport.setupQueue<string>(0, { size: 16, onInterrupt: () => notifications++ });
  setDriverOk(transport);
  const buffer = allocator.allocate(8);
  memory.write(buffer, new TextEncoder().encode('ping'));
  queue.add([{ address: buffer, length: 4 }], [{ address: buffer + 4, length: 4 }], 'ping');
  if (queue.kickPrepare()) transport.notify(0);
  expect(queue.getUsed()).toEqual({ token: 'ping', length: 4 });
  // Copy out first: TextDecoder refuses views of a SharedArrayBuffer.
  expect(new TextDecoder().decode(memory.slice(buffer + 4, 4).slice())).toBe('ping');
  expect(notifications).toBe(1);
});
