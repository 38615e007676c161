// The net device over real split and packed rings, with our ring's driver side playing the
// guest: what Linux's virtio_net does, byte for byte through guest memory.
import {
  VIRTIO_F_RING_PACKED,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  decodeNetHdr,
  featureBit,
  hasFeature,
  type ActivationContext,
  type Features,
} from '@virtio-ts/device';
import { GuestMemory } from '@virtio-ts/memory';
import {
  PackedDeviceQueue,
  PackedDriverQueue,
  SplitDeviceQueue,
  SplitDriverQueue,
  packedQueueLayout,
  splitQueueLayout,
  type DeviceQueue,
  type DriverQueue,
  type Segment,
} from '@virtio-ts/ring';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../testing/bytes.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { L2Switch } from './l2-switch.js';
import type { NetBackend } from './net-backend.js';
import { RecordingNetBackend } from './recording-net-backend.js';
import { OWN, PEER, concat, frameTo, hdr } from './net-test-frames.test-util.js';

type Layout = 'split' | 'packed';
interface Buffer {
  readonly segments: Segment[];
  readonly length: number;
  readonly id: number;
}

const QUEUE_SPACING = 0x4_0000;
const DATA_BASE = 0x100_0000;
const FILL = 0xcc;

/** A NetDevice activated over real rings in one guest memory; the test is the driver. */
function rig(layout: Layout, options: { size?: number; eventIdx?: boolean; indirect?: boolean; backend?: NetBackend; device?: Partial<NetDeviceOptions>; features?: (f: Features) => Features } = {}) {
  const size = options.size ?? 64;
  const backend = options.backend ?? new RecordingNetBackend();
  const recording = backend instanceof RecordingNetBackend ? backend : new RecordingNetBackend();
  const device = new NetDevice({ backend, queueSize: size, packed: layout === 'packed', ...options.device });
  const memory = GuestMemory.create([{ guestAddress: 0, size: 48 << 20 }]);
  let features = device.deviceFeatures;
  if (layout === 'packed') features |= featureBit(VIRTIO_F_RING_PACKED);
  if (options.eventIdx === false) features &= ~featureBit(VIRTIO_RING_F_EVENT_IDX);
  if (options.indirect === false) features &= ~featureBit(VIRTIO_RING_F_INDIRECT_DESC);
  if (options.features) features = options.features(features);
  const queueFeatures = { eventIdx: hasFeature(features, VIRTIO_RING_F_EVENT_IDX), indirect: hasFeature(features, VIRTIO_RING_F_INDIRECT_DESC) };
  const drivers: DriverQueue<Buffer>[] = [];
  const deviceQueues: DeviceQueue[] = [];
  device.queueMaxSizes.forEach((_, i) => {
    const base = 0x1000 + i * QUEUE_SPACING;
    const indirectArea = queueFeatures.indirect ? { address: base + QUEUE_SPACING / 2, maxDescriptors: 8 } : undefined;
    if (layout === 'split') {
      const l = splitQueueLayout(size, base);
      drivers.push(new SplitDriverQueue<Buffer>(l, { memory, features: queueFeatures, indirectArea }));
      deviceQueues.push(new SplitDeviceQueue(l, { memory, features: queueFeatures, index: i }));
    } else {
      const l = packedQueueLayout(size, base);
      drivers.push(new PackedDriverQueue<Buffer>(l, { memory, features: queueFeatures, indirectArea }));
      deviceQueues.push(new PackedDeviceQueue(l, { memory, features: queueFeatures, index: i }));
    }
  });
  const interrupts: number[] = [];
  const needsReset: string[] = [];
  const context: ActivationContext = {
    memory,
    features,
    queues: deviceQueues,
    interrupt: { signalQueue: (i) => interrupts.push(i), signalConfig: () => undefined },
    markNeedsReset: (reason) => needsReset.push(reason ?? ''),
  };
  expect(device.validateFeatures(features)).toBe(true);
  device.activate(context);
  let next = DATA_BASE;
  let ids = 0;
  const alloc = (length: number) => {
    const address = next;
    next += length + 64;
    return address;
  };
  const kick = (queue: number) => {
    if (drivers[queue]!.kickPrepare()) device.queueNotify(queue);
  };
  /** Posts a receive buffer of the given segment sizes (filled with FILL). */
  const postRx = (split: number[], doKick = true): Buffer => {
    const segments = split.map((length) => {
      const address = alloc(length);
      memory.fill(address, length, FILL);
      return { address, length };
    });
    const buffer = { segments, length: split.reduce((a, b) => a + b, 0), id: ids++ };
    drivers[0]!.add([], segments, buffer);
    if (doKick) kick(0);
    return buffer;
  };
  /** Transmits bytes (header + frame) split into segments. */
  const transmit = (bytes: Uint8Array, split = [bytes.length]) => {
    let at = 0;
    const segments = split.map((length) => {
      const address = alloc(length);
      memory.write(address, bytes.subarray(at, at + length));
      at += length;
      return { address, length };
    });
    const buffer = { segments, length: bytes.length, id: ids++ };
    drivers[1]!.add(segments, [], buffer);
    kick(1);
    return buffer;
  };
  const used = (queue: number) => {
    const out: { buffer: Buffer; length: number }[] = [];
    for (;;) {
      const u = drivers[queue]!.getUsed();
      if (u === null) return out;
      out.push({ buffer: u.token, length: u.length });
    }
  };
  const read = (buffer: Buffer) => {
    const out = new Uint8Array(buffer.length);
    let at = 0;
    for (const s of buffer.segments) {
      memory.read(s.address, out.subarray(at, at + s.length));
      at += s.length;
    }
    return out;
  };
  return { device, backend: recording, memory, drivers, interrupts, needsReset, postRx, transmit, used, read, kick, port: recording.ports[0]! };
}

/** Reassembles received frames from used rx buffers: header, num_buffers, then the data. */
function reassemble(r: ReturnType<typeof rig>, usedBuffers: { buffer: Buffer; length: number }[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < usedBuffers.length; ) {
    const first = usedBuffers[i]!;
    const h = decodeNetHdr(r.read(first.buffer));
    expect(h.numBuffers).toBeGreaterThanOrEqual(1);
    const parts: Uint8Array[] = [];
    for (let k = 0; k < h.numBuffers; k++) {
      const u = usedBuffers[i + k];
      expect(u, 'num_buffers names used buffers that are there').toBeDefined();
      const bytes = r.read(u!.buffer);
      // §5.1.6.4.1: all buffers but the last are used completely.
      if (k < h.numBuffers - 1) expect(u!.length).toBe(u!.buffer.length);
      // Nothing written past the used length.
      expect(bytes.subarray(u!.length).every((b) => b === FILL)).toBe(true);
      parts.push(bytes.subarray(k === 0 ? 12 : 0, u!.length));
    }
    frames.push(concat(...parts));
    i += h.numBuffers;
  }
  return frames;
}

for (const layout of ['split', 'packed'] as const) {
  describe(`virtio-net over a real ${layout} ring`, () => {
    it('TX: header split 5 + 7, frame in three segments, sent byte-exact; every chain used with length 0', () => {
      const r = rig(layout);
      const frames = [frameTo(PEER, 60, 1), frameTo(PEER, 1514, 2), frameTo(PEER, 300, 3)];
      r.drivers[1]!.disableCallback();
      for (const f of frames) {
        const bytes = concat(hdr(), f);
        r.transmit(bytes, [5, 7, 10, 4, bytes.length - 26]);
      }
      expect(r.port.sent.map((s) => s.bytes.length)).toEqual([60, 1514, 300]);
      r.port.sent.forEach((s, i) => expect(equalBytes(s.bytes, frames[i]!)).toBe(true));
      const done = r.used(1);
      expect(done.map((u) => u.length)).toEqual([0, 0, 0]);
      expect(r.needsReset).toEqual([]);
    });

    it('RX without MRG_RXBUF: one frame per buffer, num_buffers 1, the driver sees header + frame', () => {
      const r = rig(layout, { features: (f) => f & ~featureBit(VIRTIO_NET_F_MRG_RXBUF) });
      for (let i = 0; i < 4; i++) r.postRx([12, 1514]);
      const frames = [frameTo(OWN, 60, 1), frameTo(OWN, 1514, 2), frameTo(OWN, 100, 3)];
      r.port.deliverBatch(frames);
      const done = r.used(0);
      expect(done.map((u) => u.length)).toEqual([72, 1526, 112]);
      const got = reassemble(r, done);
      got.forEach((g, i) => expect(equalBytes(g, frames[i]!)).toBe(true));
      expect(r.interrupts.filter((i) => i === 0).length).toBe(1);
    });

    it('5.1.6.4.1: MRG_RXBUF spreads a 64 KiB frame over buffers with num_buffers set and each but the last full', () => {
      const r = rig(layout, { size: 128 });
      for (let i = 0; i < 70; i++) r.postRx([500, 1036]);
      const frame = frameTo(OWN, 65000, 7);
      // A 65000-byte frame exceeds MTU 1500 without GSO: raise the limit through the back-end MTU.
      expect(r.port.deliver(frame)).toBe(true);
      expect(r.device.metrics.faults.RX_OVERSIZE).toBe(1);
      const big = rig(layout, { size: 128, backend: new RecordingNetBackend({ mtu: 65535 }) });
      for (let i = 0; i < 70; i++) big.postRx([500, 1036]);
      expect(big.backend.ports[0]!.deliver(frame)).toBe(true);
      const done = big.used(0);
      expect(done).toHaveLength(Math.ceil((65000 + 12) / 1536));
      expect(decodeNetHdr(big.read(done[0]!.buffer)).numBuffers).toBe(done.length);
      const [got] = reassemble(big, done);
      expect(equalBytes(got!, frame)).toBe(true);
    });

    it('H13: a thousand malformed transmit chains are all returned, and a valid frame still goes out', () => {
      const r = rig(layout, { size: 64 });
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 50; i++) r.transmit(new Uint8Array(5 + (i % 7)));
        expect(r.used(1)).toHaveLength(50);
      }
      expect(r.device.metrics.faults.TX_SHORT_HEADER).toBe(1000);
      r.transmit(concat(hdr(), frameTo(PEER, 80)));
      expect(r.port.sent).toHaveLength(1);
      expect(r.needsReset).toEqual([]);
    });

    it('property: with back-pressure every receive buffer is returned at most once with correct bytes or is still the guest\'s, and frames arrive in order', () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              fc.record({ op: fc.constant('post' as const), split: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 3 }), kick: fc.boolean() }),
              fc.record({ op: fc.constant('deliver' as const), length: fc.integer({ min: 14, max: 1514 }), seed: fc.integer({ min: 0, max: 255 }) }),
              fc.record({ op: fc.constant('reap' as const) }),
            ),
            { maxLength: 60 },
          ),
          (ops) => {
            const r = rig(layout, { size: 32 });
            const delivered: Uint8Array[] = [];
            const returned: { buffer: Buffer; length: number }[] = [];
            const posted: Buffer[] = [];
            const ring = r.drivers[0]!;
            for (const o of ops) {
              if (o.op === 'post') {
                // Each buffer at least the header (§5.1.6.3.1, MRG_RXBUF); the ring may be full.
                const split = o.split.map((n, i) => (i === 0 ? Math.max(n, 64) : n));
                if (ring.freeCount < split.length) continue;
                posted.push(r.postRx(split, o.kick));
              } else if (o.op === 'deliver') {
                const f = frameTo(OWN, o.length, o.seed);
                delivered.push(f);
                r.port.deliver(f);
              } else {
                returned.push(...r.used(0));
              }
            }
            returned.push(...r.used(0));
            const seen = new Set<number>();
            for (const u of returned) {
              expect(seen.has(u.buffer.id), 'a buffer is returned once').toBe(false);
              seen.add(u.buffer.id);
            }
            // Buffers not returned are untouched: still the guest's, nothing written into them.
            for (const b of posted) if (!seen.has(b.id)) expect(r.read(b).every((x) => x === FILL)).toBe(true);
            const frames = reassemble(r, returned);
            expect(frames.length).toBeLessThanOrEqual(delivered.length);
            frames.forEach((f, i) => expect(equalBytes(f, delivered[i]!)).toBe(true));
            // Give the guest plenty of buffers: everything that waited arrives, in order.
            while (ring.freeCount >= 1 && r.port.backlog.length > 0) {
              r.postRx([1600]);
              returned.push(...r.used(0));
            }
            expect(r.port.backlog).toHaveLength(0);
            const all = reassemble(r, returned);
            expect(all.length).toBe(delivered.length);
            all.forEach((f, i) => expect(equalBytes(f, delivered[i]!)).toBe(true));
            expect(r.needsReset).toEqual([]);
          },
        ),
        { numRuns: 60 },
      );
    });
  });
}

describe('two NetDevices on the L2Switch', () => {
  it('a broadcast from A reaches B; B answers A by unicast; a third port sees only the broadcast', () => {
    const lan = new L2Switch({ name: 'lan0' });
    const macA = '52:54:00:00:00:0a';
    const macB = '52:54:00:00:00:0b';
    const a = rig('split', { backend: lan.connect('a'), device: { mac: macA } });
    const b = rig('packed', { backend: lan.connect('b'), device: { mac: macB } });
    const c = rig('split', { backend: lan.connect('c'), device: { mac: '52:54:00:00:00:0c' } });
    for (const r of [a, b, c]) for (let i = 0; i < 4; i++) r.postRx([1536]);
    const broadcast = frameTo('ff:ff:ff:ff:ff:ff', 60, 1);
    broadcast.set([0x52, 0x54, 0, 0, 0, 0x0a], 6);
    a.transmit(concat(hdr(), broadcast));
    const [atB] = reassemble(b, b.used(0));
    expect(equalBytes(atB!, broadcast)).toBe(true);
    expect(reassemble(c, c.used(0))).toHaveLength(1);
    const reply = frameTo(macA, 100, 2);
    reply.set([0x52, 0x54, 0, 0, 0, 0x0b], 6);
    b.transmit(concat(hdr(), reply));
    const [atA] = reassemble(a, a.used(0));
    expect(equalBytes(atA!, reply)).toBe(true);
    expect(c.used(0)).toHaveLength(0); // learned: not flooded
    expect(a.used(0)).toHaveLength(0); // never back to the sender
    lan.close();
  });
});
