import { EventFd } from '@virtio-ts/host';
import { describe, expect, it } from 'vitest';
import { MAX_IDS, ReadinessWaiter } from './readiness-waiter.js';

describe('ReadinessWaiter (epoll on a worker thread, Atomics to the event loop)', () => {
  it('reports an fd as writable when added and readable when signalled, by id, without blocking the event loop', async () => {
    const waiter = new ReadinessWaiter();
    const a = EventFd.create();
    const b = EventFd.create();
    try {
      waiter.watch(a.fd, 5);
      waiter.watch(b.fd, 40);
      // An eventfd is writable at once: edge-triggered EPOLLOUT on add.
      const first = await waiter.wait();
      expect(first.filter((r) => r.writable).map((r) => r.id).sort((x, y) => x - y)).toEqual([5, 40]);
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      setTimeout(() => b.signal(), 30);
      const ready = await waiter.wait();
      clearInterval(timer);
      expect(ready.find((r) => r.id === 40)?.readable).toBe(true);
      expect(ready.some((r) => r.id === 5 && r.readable)).toBe(false);
      expect(ticks).toBeGreaterThan(3); // the event loop kept running while we waited
      expect(() => waiter.watch(a.fd, MAX_IDS)).toThrow(RangeError);
    } finally {
      await waiter.close();
      await waiter.close();
      a.close();
      b.close();
    }
    expect(await waiter.wait()).toEqual([]);
  });
});
