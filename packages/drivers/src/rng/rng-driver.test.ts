import { RngDevice } from '@virtio-ts/backends';
import { FakeClock } from '@virtio-ts/backends/testing';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { RngDriver } from './rng-driver.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('rng driver ↔ rng device end to end (virtio-pci)', () => {
  it('README example: random bytes arrive, as many as asked, different each time', async () => {
    const rng = RngDriver.init(createPciHarness(new RngDevice()).transport);
    const a = await rng.read(32);
    const b = await rng.read(32);
    expect(a.length).toBe(32);
    expect(a).not.toEqual(b);
    const big = await rng.read(10_000); // several buffers of 4096
    expect(new Set(big).size).toBeGreaterThan(200);
  });

  it('the rate limit holds end to end: reads wait for tokens on a fake clock, then complete', async () => {
    const clock = new FakeClock();
    const device = new RngDevice({ clock, rateLimit: { bytes: 1000, periodMs: 1000 } });
    const rng = RngDriver.init(createPciHarness(device).transport, { bufferSize: 500 });
    let done = false;
    const pending = rng.read(3000).then((bytes) => {
      done = true;
      return bytes;
    });
    for (let i = 0; i < 5; i++) await tick();
    expect(device.metrics.bytes).toBe(1000); // the burst only
    expect(done).toBe(false);
    for (let t = 0; t < 1900; t += 100) {
      clock.advance(100);
      for (let i = 0; i < 3; i++) await tick();
      expect(device.metrics.bytes).toBeLessThanOrEqual(1000 + clock.now());
    }
    // 1000 bytes of burst + 2000 bytes at 1 byte/ms: the read completes at t = 2000 ms, not before.
    expect(clock.now()).toBe(1900);
    expect(done).toBe(false);
    clock.advance(100);
    for (let i = 0; i < 5; i++) await tick();
    expect(done).toBe(true);
    expect((await pending).length).toBe(3000);
    expect(device.metrics.throttled).toBeGreaterThan(0);
  });

  it('over packed virtqueues (§2.8) too', async () => {
    const device = new RngDevice({ packed: true });
    const rng = RngDriver.init(createPciHarness(device).transport, { bufferSize: 100 });
    expect(rng.features & (1n << 34n)).not.toBe(0n);
    expect((await rng.read(1000)).length).toBe(1000);
    expect(device.metrics.requests).toBe(10);
  });

  it('reset rejects a read waiting for the rate limiter', async () => {
    const clock = new FakeClock();
    const rng = RngDriver.init(createPciHarness(new RngDevice({ clock, rateLimit: { bytes: 10, periodMs: 1000 } })).transport);
    const pending = rng.read(100);
    await tick();
    rng.reset();
    await expect(pending).rejects.toMatchObject({ code: 'DEVICE_RESET' });
  });
});
