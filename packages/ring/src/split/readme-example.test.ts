import { GuestMemory } from '@virtio-ts/memory';
import { expect, it } from 'vitest';
import { SplitDeviceQueue, SplitDriverQueue, splitQueueLayout } from '../index.js';

it('README example (split ring) runs', () => {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  const layout = splitQueueLayout(256, 0x1000); // descTable 0x1000, availRing 0x2000, usedRing 0x2208
  const features = { eventIdx: true, indirect: false, inOrder: false };
  const driver = new SplitDriverQueue<string>(layout, { memory, features });
  const device = new SplitDeviceQueue(layout, { memory, features });

  // Driver: a 16-byte request header, then a 512-byte buffer for the device to fill.
  driver.add([{ address: 0x10000, length: 16 }], [{ address: 0x20000, length: 512 }], 'request 1');
  const kick = driver.kickPrepare(); // true: ring the doorbell

  // Device, on the doorbell: pop validated chains, work, return them, then maybe interrupt.
  for (let chain = device.pop(); chain !== null; chain = device.pop()) {
    memory.fill(chain.writable[0]!.address, 512, 0xab);
    device.pushUsed(chain.head, 512);
  }
  const interrupt = device.needsNotification(); // true

  // Driver, on the interrupt:
  const used = driver.getUsed(); // { token: 'request 1', length: 512 }

  expect(layout).toEqual({ size: 256, descTable: 0x1000, availRing: 0x2000, usedRing: 0x2208 });
  expect(kick).toBe(true);
  expect(interrupt).toBe(true);
  expect(used).toEqual({ token: 'request 1', length: 512 });
  expect(memory.readU8(0x20000 + 511)).toBe(0xab);
});
