import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import { FakeClock } from '../testing/fake-clock.js';
import { harness } from '../testing/harness.js';
import { GET_RANDOM_VALUES_MAX, webCryptoEntropy } from './entropy.js';
import { TokenBucket } from './rate-limiter.js';
import { RngDevice, type RngDeviceOptions } from './rng-device.js';

/** A deterministic entropy source: 0, 1, 2, ... so that scatter is checked byte for byte. */
function counterEntropy() {
  let n = 0;
  return (buffer: Uint8Array) => {
    for (let i = 0; i < buffer.length; i++) buffer[i] = n++ & 0xff;
  };
}

function setup(options: RngDeviceOptions = {}) {
  const device = new RngDevice(options);
  const h = harness(device, 1 << 20);
  h.activate(device.deviceFeatures);
  return { device, h, queue: h.queues[0]!, b: h.builder };
}

describe('virtio-rng (VIRTIO 1.3 §5.4)', () => {
  it('5.4.6: fills the buffer with random bytes from Web Crypto and reports the length written', () => {
    const { device, queue, b, h } = setup();
    const first = b.reserve([256], 0);
    const second = b.reserve([256], 0);
    queue.offer(b.chain([], first));
    queue.offer(b.chain([], second));
    device.queueNotify(0);
    expect(queue.used).toEqual([
      { head: 0, length: 256 },
      { head: 1, length: 256 },
    ]);
    const x = b.bytesOf(first);
    const y = b.bytesOf(second);
    expect(x).not.toEqual(y);
    expect(new Set(x).size).toBeGreaterThan(100); // 256 random bytes: ~162 distinct values expected
    expect(h.queueInterrupts.length).toBe(2);
    expect(device.metrics.bytes).toBe(512);
  });

  it('H14: a buffer of 1-byte descriptors is filled byte-exact, in order', () => {
    const { device, queue, b } = setup({ entropy: counterEntropy() });
    const ones = b.reserve(Array.from({ length: 100 }, () => 1), 0xcc);
    queue.offer(b.chain([], ones));
    device.queueNotify(0);
    expect(queue.used).toEqual([{ head: 0, length: 100 }]);
    expect([...b.bytesOf(ones)]).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(b.guardsIntact()).toBe(true);
  });

  it('5.4.6.1: "The driver MUST NOT place device-readable buffers into the queue" — such a chain is returned with length 0', () => {
    const { device, queue, b } = setup();
    const writable = b.reserve([16], 0xcc);
    queue.offer(b.chain(b.place(new Uint8Array(4)), writable));
    queue.offer(b.chain([], []));
    device.queueNotify(0);
    expect(queue.used.map((u) => u.length)).toEqual([0, 0]);
    expect(b.bytesOf(writable).every((x) => x === 0xcc)).toBe(true);
    expect(device.metrics.toJSON()).toMatchObject({ readableBuffers: 1, emptyBuffers: 1 });
  });

  it('5.4.6.2: "MAY use less than the entire buffer length" — a buffer past maxRequestBytes gets a prefix', () => {
    const { device, queue, b } = setup({ maxRequestBytes: 100 });
    queue.offer(b.chain([], b.reserve([300])));
    device.queueNotify(0);
    expect(queue.used).toEqual([{ head: 0, length: 100 }]);
  });

  it('Web Crypto entropy works past its 64 KiB per-call quota (chunks)', () => {
    const big = new Uint8Array(3 * GET_RANDOM_VALUES_MAX + 5);
    webCryptoEntropy(big);
    expect(big.subarray(big.length - 64).some((x) => x !== 0)).toBe(true);
    expect(big.subarray(GET_RANDOM_VALUES_MAX, GET_RANDOM_VALUES_MAX + 64).some((x) => x !== 0)).toBe(true);
  });

  it('rate limit: requests wait for tokens (never fail) and the bucket bounds the bytes over time', () => {
    const clock = new FakeClock();
    const { device, queue, b } = setup({ clock, rateLimit: { bytes: 1000, periodMs: 1000 } });
    for (let i = 0; i < 10; i++) queue.offer(b.chain([], b.reserve([500])));
    device.queueNotify(0);
    expect(queue.used.length).toBe(2); // the burst: 1000 bytes
    expect(device.waiting).toBe(true);
    clock.advance(499);
    expect(queue.used.length).toBe(2);
    clock.advance(1);
    expect(queue.used.length).toBe(3);
    clock.advance(3500);
    // 1000 (burst) + 1 B/ms * 4000 ms = 5000 bytes = 10 buffers.
    expect(queue.used.length).toBe(10);
    expect(queue.used.every((u) => u.length === 500)).toBe(true);
    expect(device.metrics.throttled).toBeGreaterThan(0);
    expect(device.waiting).toBe(false);
  });

  it('property: over any schedule, bytes delivered by time T never exceed burst + rate * T', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ size: fc.integer({ min: 1, max: 3000 }), wait: fc.nat({ max: 2000 }) }), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 100, max: 5000 }),
        (steps, bytesPerSecond) => {
          const clock = new FakeClock();
          const { device, queue, b } = setup({ clock, rateLimit: { bytes: bytesPerSecond, periodMs: 1000 } });
          for (const step of steps) {
            queue.offer(b.chain([], b.reserve([step.size])));
            device.queueNotify(0);
            clock.advance(step.wait);
            const delivered = queue.used.reduce((n, u) => n + u.length, 0);
            expect(delivered).toBeLessThanOrEqual(bytesPerSecond + (bytesPerSecond / 1000) * clock.now() + 1e-6);
          }
          // Everything is eventually served.
          clock.advance(10 * 1000 * Math.ceil((steps.length * 3000) / bytesPerSecond));
          expect(queue.used.length).toBe(steps.length);
          expect(queue.used.every((u) => u.length > 0)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a reset while a request waits cancels the timer and pushes nothing', () => {
    const clock = new FakeClock();
    const { device, queue, b } = setup({ clock, rateLimit: { bytes: 10, periodMs: 1000 } });
    queue.offer(b.chain([], b.reserve([10])));
    queue.offer(b.chain([], b.reserve([10])));
    device.queueNotify(0);
    expect(queue.used.length).toBe(1);
    device.reset();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(5000);
    expect(queue.used.length).toBe(1);
  });

  it('persist: the bucket level survives save/restore; hostile states are refused (H16)', () => {
    const clock = new FakeClock();
    const a = new RngDevice({ clock, rateLimit: { bytes: 1000, periodMs: 1000 } });
    const h = harness(a, 1 << 20);
    h.activate(a.deviceFeatures);
    h.queues[0]!.offer(h.builder.chain([], h.builder.reserve([600])));
    a.queueNotify(0);
    const state = JSON.parse(JSON.stringify(a.saveState())) as unknown;
    expect(state).toEqual({ version: 1, tokens: 400 });
    const b = new RngDevice({ clock, rateLimit: { bytes: 1000, periodMs: 1000 } });
    b.restoreState(state);
    expect(b.saveState()).toEqual({ version: 1, tokens: 400 });
    for (const bad of [null, {}, { version: 2 }, { version: 1, tokens: -1 }, { version: 1, tokens: 'x' }]) {
      expect(() => b.restoreState(bad)).toThrow(BackendError);
    }
  });

  it('refuses a bad rate limit or queue size with INVALID_OPTION', () => {
    expect(() => new TokenBucket({ bytes: 0, periodMs: 1 }, new FakeClock())).toThrow(/INVALID_OPTION/);
    expect(() => new RngDevice({ queueSize: 3 })).toThrow(/INVALID_OPTION/);
  });
});
