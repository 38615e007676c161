import { describe, expect, it } from 'vitest';
import { NET_BENCH_FRAME_SIZES, runNetBench } from './net-bench.js';
import { createMemoryLinkPair } from './stack/frame-link.js';
import { IpInterface } from './stack/ip-interface.js';

describe('runNetBench over an in-memory link', () => {
  it('measures 64 B, 1500 B and 64 KiB frames: nothing lost or corrupt on a lossless link with back-pressure', async () => {
    const [a, b] = createMemoryLinkPair({ mtu: 65522, capacity: 64 });
    for (const frameSize of NET_BENCH_FRAME_SIZES) {
      const result = await runNetBench(a, b, { frameSize, durationMs: 100 });
      expect(result.framesSent).toBeGreaterThan(0);
      expect(result).toMatchObject({ frameSize, framesLost: 0, framesCorrupt: 0, framesReceived: result.framesSent });
      expect(result.packetsPerSecond).toBeGreaterThan(0);
    }
  });

  it('counts frames lost when the link drops them, and a stack on the same link is undisturbed', async () => {
    const [a, b] = createMemoryLinkPair({ mtu: 1500 });
    const left = new IpInterface({ link: a, address: '10.0.0.1' });
    new IpInterface({ link: b, address: '10.0.0.2' });
    let n = 0;
    const lossy = { ...a, mac: a.mac, mtu: a.mtu, send: (frame: Uint8Array) => (n++ % 2 === 0 ? a.send(frame) : true), onFrame: a.onFrame.bind(a), onWritable: a.onWritable.bind(a) };
    const result = await runNetBench(lossy, b, { frameSize: 64, durationMs: 50 });
    // Every second send attempt is swallowed: about half the frames are lost, and the counts add up.
    expect(result.framesLost).toBeGreaterThan(0);
    expect(result.framesReceived).toBeGreaterThan(0);
    expect(result.framesLost + result.framesReceived).toBe(result.framesSent);
    expect(Math.abs(result.framesLost - result.framesSent / 2)).toBeLessThanOrEqual(result.framesSent / 4 + 1);
    expect(result.framesCorrupt).toBe(0);
    expect((await left.ping('10.0.0.2')).received).toBe(1);
    expect(left.stats.dropped.unknownEtherType).toBe(0);
  });

  it('warmupMs: the warm-up run is sent first and not counted in the result', async () => {
    const [a, b] = createMemoryLinkPair({ mtu: 1500 });
    let total = 0;
    b.onFrame(() => total++);
    const result = await runNetBench(a, b, { frameSize: 100, durationMs: 30, warmupMs: 30 });
    expect(result.framesReceived).toBe(result.framesSent);
    expect(total).toBeGreaterThan(result.framesReceived);
  });

  it('refuses frame sizes outside 60..MTU+14', async () => {
    const [a, b] = createMemoryLinkPair({ mtu: 1500 });
    await expect(runNetBench(a, b, { frameSize: 59 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(runNetBench(a, b, { frameSize: 1515 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
