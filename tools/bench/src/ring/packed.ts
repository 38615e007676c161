import { GuestMemory } from '@virtio-ts/memory';
import { PackedDeviceQueue, PackedDriverQueue, packedQueueFootprint, packedQueueLayout, type Segment } from '@virtio-ts/ring';

/**
 * Packed-ring round trips per second through the public API, one thread (same shape as
 * `splitRoundTripper`; a separate function so each stays monomorphic).
 */
export function packedRoundTripper(segments: number, now: () => number = () => performance.now()): (ops: number) => number {
  const size = 256;
  const layout = packedQueueLayout(size, 0);
  const dataAddress = Math.ceil(packedQueueFootprint(size) / 4096) * 4096;
  const memory = GuestMemory.create([{ guestAddress: 0, size: dataAddress + (1 << 16) }]);
  const driver = new PackedDriverQueue<number>(layout, { memory });
  const device = new PackedDeviceQueue(layout, { memory });
  const readable: Segment[] = [{ address: dataAddress, length: 64 }];
  const writable: Segment[] = [];
  for (let k = 1; k < segments; k++) writable.push({ address: dataAddress + 64 * k, length: 64 });
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

const AVAIL = 1 << 7;
const USED = 1 << 15;
const NEXT = 1;
const WRITE = 2;

/**
 * The bare packed baseline (§2.8): descriptors written with the head's flags last (Atomics, the
 * packed ring's "index word"), the device checks AVAIL/USED against its wrap counter, reads the
 * chain, writes the used descriptor with its flags last; the driver reads it back. Chains never
 * straddle the wrap (size is a multiple of `segments`), no ids or free list, no validation.
 */
export function packedBaselineRoundTrips(
  buffer: SharedArrayBuffer,
  size: number,
  segments: number,
  ops: number,
  dataAddress: number,
  now: () => number = () => performance.now(),
): number {
  const u16 = new Uint16Array(buffer);
  const u32 = new Uint32Array(buffer);
  let availPos = 0;
  let availWrap = 1;
  let devicePos = 0;
  let deviceWrap = 1;
  let usedPos = 0;
  let usedWrap = 1;
  let sink = 0;
  let served = 0;
  let reaped = 0;
  u16.fill(0, 0, size * 8);
  const started = now();
  for (let i = 0; i < ops; i++) {
    const availFlags = availWrap === 1 ? AVAIL : USED;
    for (let k = segments - 1; k >= 0; k--) {
      const slot = availPos + k;
      u32[slot * 4] = dataAddress + 64 * k;
      u32[slot * 4 + 1] = 0;
      u32[slot * 4 + 2] = 64;
      u16[slot * 8 + 6] = i & 0xffff;
      const flags = availFlags | (k < segments - 1 ? NEXT : 0) | (k > 0 ? WRITE : 0);
      if (k === 0) Atomics.store(u16, slot * 8 + 7, flags);
      else u16[slot * 8 + 7] = flags;
    }
    availPos += segments;
    if (availPos >= size) {
      availPos -= size;
      availWrap ^= 1;
    }
    // Device.
    const headFlags = Atomics.load(u16, devicePos * 8 + 7);
    if (((headFlags & AVAIL) !== 0) === (deviceWrap === 1) && ((headFlags & USED) !== 0) !== (deviceWrap === 1)) {
      let written = 0;
      let slot = devicePos;
      let flags = headFlags;
      for (;;) {
        sink += u32[slot * 4]! + u32[slot * 4 + 1]!;
        if ((flags & WRITE) !== 0) written += u32[slot * 4 + 2]!;
        if ((flags & NEXT) === 0) break;
        slot++;
        flags = u16[slot * 8 + 7]!;
      }
      const id = u16[slot * 8 + 6]!;
      u16[devicePos * 8 + 6] = id;
      u32[devicePos * 4 + 2] = written;
      Atomics.store(u16, devicePos * 8 + 7, deviceWrap === 1 ? AVAIL | USED : 0);
      served++;
      devicePos += segments;
      if (devicePos >= size) {
        devicePos -= size;
        deviceWrap ^= 1;
      }
    }
    // Driver.
    const usedFlags = Atomics.load(u16, usedPos * 8 + 7);
    if (((usedFlags & USED) !== 0) === (usedWrap === 1)) {
      sink += u16[usedPos * 8 + 6]! + u32[usedPos * 4 + 2]!;
      reaped++;
      usedPos += segments;
      if (usedPos >= size) {
        usedPos -= size;
        usedWrap ^= 1;
      }
    }
  }
  const seconds = (now() - started) / 1000;
  if (sink === -1) console.log(sink);
  if (served !== ops || reaped !== ops) throw new Error(`packed baseline lost buffers: ${served}/${reaped} of ${ops}`);
  return ops / seconds;
}
