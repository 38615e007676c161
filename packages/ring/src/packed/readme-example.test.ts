import { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import { PackedDeviceQueue, PackedDriverQueue, packedQueueLayout } from '../index.js';

// The example of the "Packed" section of packages/ring/README.md, run as a test.
describe('README: packed ring example', () => {
  it('runs', () => {
    // --- example start
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
    const layout = packedQueueLayout(100, 0x1000); // any size 1..32768
    const features = { eventIdx: true, indirect: false, inOrder: false };
    const driver = new PackedDriverQueue<string>(layout, { memory, features });
    const device = new PackedDeviceQueue(layout, { memory, features });

    // Driver: a 16-byte request header, then a 512-byte buffer for the device to fill.
    driver.add([{ address: 0x10000, length: 16 }], [{ address: 0x20000, length: 512 }], 'request 1');
    const kick = driver.kickPrepare(); // true: ring the doorbell

    // Device, on the doorbell: pop, work, return, then maybe interrupt.
    for (let chain = device.pop(); chain !== null; chain = device.pop()) {
      memory.fill(chain.writable[0]!.address, 512, 0xab);
      device.pushUsed(chain.head, 512);
    }
    const interrupt = device.needsNotification(); // true

    // Driver, on the interrupt:
    const used = driver.getUsed(); // { token: 'request 1', length: 512 }
    // --- example end
    expect(kick).toBe(true);
    expect(interrupt).toBe(true);
    expect(used).toEqual({ token: 'request 1', length: 512 });
    expect(memory.readU8(0x20000 + 511)).toBe(0xab);
  });
});
