import type { Segment } from '@virtio-ts/ring';
import { createSplitRing } from '@virtio-ts/ring/testing';

/**
 * Round trips per second through the public API, one thread: driver `add` → device `pop`
 * (full chain validation) → device `pushUsed` → driver `getUsed`. The ring is built once and
 * reused, so later repeats run JIT-warm code.
 */
export function splitRoundTripper(segments: number, features: { eventIdx?: boolean; indirect?: boolean } = {}, now: () => number = () => performance.now()): (ops: number) => number {
  const ring = createSplitRing<number>({ size: 256, features, dataSize: 1 << 16 });
  const { driver, device } = ring;
  const readable: Segment[] = [{ address: ring.dataAddress, length: 64 }];
  const writable: Segment[] = [];
  for (let k = 1; k < segments; k++) writable.push({ address: ring.dataAddress + 64 * k, length: 64 });
  return (ops) => {
    let sink = 0;
    const started = now();
    for (let i = 0; i < ops; i++) {
      driver.add(readable, writable, i);
      const chain = device.pop()!;
      device.pushUsed(chain.head, chain.writableLength);
      sink += driver.getUsed()!.length;
    }
    const seconds = (now() - started) / 1000;
    if (sink < 0) console.log(sink);
    return ops / seconds;
  };
}
