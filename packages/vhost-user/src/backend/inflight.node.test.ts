import { BlkDevice } from '@virtio-ts/backends';
import { MemoryDisk } from '@virtio-ts/backends/testing';
import { Mapping, UnixSocket } from '@virtio-ts/host';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VhostUserError, serveConnection } from '../index.js';
import { TestFrontend } from '../testing/index.js';
import { SplitInflightRegion, splitInflightQueueSize } from './inflight.js';

const HEADER = 0x100000;
const DATA = 0x200000;
const STATUS = 0x300000;
const QUEUE_SIZE = 64;

/** Write request `i`: its own header, 4 KiB of data (byte value 0x11 × (i + 1)) and status byte, at sector 8i. */
function postWrite(frontend: TestFrontend, i: number): void {
  const header = HEADER + 16 * i;
  frontend.memory.writeU32(header, 1 /* OUT */);
  frontend.memory.writeU32(header + 4, 0);
  frontend.memory.writeU64(header + 8, BigInt(8 * i));
  frontend.memory.fill(DATA + 4096 * i, 4096, (0x11 * (i + 1)) & 0xff);
  frontend.memory.writeU8(STATUS + i, 0xff);
  frontend.post(0, [{ address: header, length: 16 }, { address: DATA + 4096 * i, length: 4096 }], [{ address: STATUS + i, length: 1 }], i);
}

const until = async (condition: () => boolean, what: string): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
};

describe('vhost-user inflight I/O tracking (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, split rings)', () => {
  it('a restarted back-end resubmits exactly the requests left in flight, in pop order, and the ring continues after them', async () => {
    const frontend = new TestFrontend(UnixSocket.pair()[0]);
    // The first back-end: its disk holds every write until released.
    const diskA = new MemoryDisk({ size: 1 << 20, manual: true });
    const [oursA, theirsA] = UnixSocket.pair();
    frontend.socket.close();
    frontend.socket = oursA;
    const servedA = serveConnection(theirsA, { device: new BlkDevice({ driver: diskA, queueSize: QUEUE_SIZE }), drainTimeoutMs: 50 });
    await frontend.start({ queues: 1, queueSize: QUEUE_SIZE, inflight: true });
    expect(frontend.inflight!.mmapSize).toBe(splitInflightQueueSize(QUEUE_SIZE));
    for (let i = 0; i < 3; i++) postWrite(frontend, i);
    await until(() => diskA.held.length === 3, 'three writes in the disk');
    // Request 1 completes; 0 and 2 are still in flight when the back-end goes away.
    diskA.held.splice(1, 1)[0]!.release();
    expect(await frontend.collect(0, 1)).toEqual([{ token: 1, length: 1 }]);

    // What the buffer says now: two heads in flight, used_idx 1.
    const mapping = Mapping.map(frontend.inflight!.fd, frontend.inflight!.mmapSize);
    const region = new SplitInflightRegion(mapping.buffer, 0, QUEUE_SIZE);
    expect(region.version).toBe(1);
    expect(region.usedIdx).toBe(1);
    expect(Array.from({ length: QUEUE_SIZE }, (_, h) => h).filter((h) => region.isInflight(h))).toHaveLength(2);

    // The back-end "crashes": its connection ends with the two writes never completed.
    const [oursB, theirsB] = UnixSocket.pair();
    const reconnecting = (async () => {
      frontend.socket.close();
      const endA = await servedA;
      expect(endA.reason).toBe('closed');
      // A restarted back-end with an empty disk, given the same buffer, memory and rings.
      const diskB = new MemoryDisk({ size: 1 << 20 });
      const log: string[] = [];
      const servedB = serveConnection(theirsB, { device: new BlkDevice({ driver: diskB, queueSize: QUEUE_SIZE }), log: (m) => log.push(m) });
      await frontend.reconnect(oursB);
      return { diskB, log, servedB };
    })();
    const { diskB, log, servedB } = await reconnecting;
    // The guest never kicks again: the back-end resubmits on its own, in the order they were popped.
    const resubmitted = await frontend.collect(0, 2);
    expect(resubmitted.map((c) => c.token)).toEqual([0, 2]);
    expect(log.join('\n')).toContain('vring 0: resubmitting 2 request(s) left in flight');
    for (const i of [0, 2]) {
      expect(frontend.memory.readU8(STATUS + i)).toBe(0);
      expect(diskB.bytes.subarray(8 * i * 512, 8 * i * 512 + 4096).every((b) => b === 0x11 * (i + 1))).toBe(true);
    }
    // Request 1 had completed before the restart: it is not executed twice.
    expect(diskB.bytes.subarray(8 * 512, 16 * 512).every((b) => b === 0)).toBe(true);
    expect(region.usedIdx).toBe(3);
    expect(Array.from({ length: QUEUE_SIZE }, (_, h) => h).some((h) => region.isInflight(h))).toBe(false);

    // The ring continues with the next available entry.
    postWrite(frontend, 3);
    expect(await frontend.collect(0, 1)).toEqual([{ token: 3, length: 1 }]);
    expect(diskB.bytes[3 * 8 * 512]).toBe(0x44);
    mapping.unmap();
    frontend.close();
    expect((await servedB).reason).toBe('closed');
  });

  it('GET_INFLIGHT_FD with the packed ring negotiated answers with no buffer (mmap_size 0, no fd)', async () => {
    const [ours, theirs] = UnixSocket.pair();
    const frontend = new TestFrontend(ours);
    const served = serveConnection(theirs, { device: new BlkDevice({ driver: new MemoryDisk({ size: 1 << 20 }), queueSize: QUEUE_SIZE, packed: true }) });
    frontend.send({ type: 'GET_FEATURES' });
    frontend.send({ type: 'SET_FEATURES', value: await frontend.replyU64() });
    frontend.send({ type: 'SET_PROTOCOL_FEATURES', value: 1n << 12n });
    frontend.send({ type: 'GET_INFLIGHT_FD', mmapSize: 0, mmapOffset: 0, numQueues: 1, queueSize: QUEUE_SIZE });
    const reply = await frontend.replyWithFds();
    expect(new DataView(reply.payload.buffer, reply.payload.byteOffset).getBigUint64(0, true)).toBe(0n);
    expect(reply.fds).toEqual([]);
    frontend.close();
    expect((await served).reason).toBe('closed');
  });
});

describe('the split queue region ("Inflight I/O tracking")', () => {
  const fresh = (size: number): SplitInflightRegion => {
    const region = new SplitInflightRegion(new ArrayBuffer(splitInflightQueueSize(size)), 0, size);
    region.initialise(size, 0);
    return region;
  };

  it('"When reconnecting": entries of a used batch whose used_idx was not yet updated are cleared, not resubmitted', () => {
    const region = fresh(8);
    region.markPopped(3, 1);
    region.markPopped(5, 2);
    region.markPopped(6, 3);
    // The back-end used 5 and 6 in one batch and moved the ring's used idx to 2, then died before clearing.
    region.linkUsed(5);
    region.linkUsed(6);
    const recovery = region.recover(8, 2);
    expect(recovery).toEqual({ heads: [3], batchCleared: 2, maxCounter: 1 });
    expect(region.usedIdx).toBe(2);
  });

  it('H: a corrupt buffer is a BAD_PAYLOAD error, never an out-of-range access', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (error) {
        return VhostUserError.isInstance(error) ? error.code : String(error);
      }
      return undefined;
    };
    const tooLong = fresh(8);
    expect(code(() => tooLong.recover(8, 9))).toBe('BAD_PAYLOAD'); // a batch longer than the ring
    const badLink = fresh(8);
    badLink.linkUsed(7);
    expect(code(() => badLink.recover(4, 1))).toBe('BAD_PAYLOAD'); // the batch list leaves the ring
    const outside = fresh(16);
    outside.markPopped(12, 1);
    expect(code(() => outside.recover(8, 0))).toBe('BAD_PAYLOAD'); // in flight past the ring
    expect(code(() => fresh(8).recover(16, 0))).toBe('BAD_PAYLOAD'); // a ring larger than the buffer
  });

  it('property: wherever the back-end dies — even between moving used idx and clearing the batch — recovery finds exactly the heads popped and not used, in pop order', () => {
    const size = 16;
    fc.assert(
      fc.property(
        fc.array(fc.record({ pop: fc.nat(3), use: fc.array(fc.nat(15), { maxLength: 4 }) }), { minLength: 1, maxLength: 30 }),
        fc.nat(),
        fc.boolean(),
        (steps, crashAt, midBatch) => {
          const region = fresh(size);
          let counter = 1;
          let usedIdx = 0;
          let nextHead = 0;
          const inFlight: number[] = []; // in pop order
          const crashStep = crashAt % steps.length;
          for (let s = 0; s < steps.length; s++) {
            const step = steps[s]!;
            for (let p = 0; p < step.pop && inFlight.length < size; p++) {
              while (inFlight.includes(nextHead % size)) nextHead++;
              const head = nextHead++ % size;
              region.markPopped(head, counter++);
              inFlight.push(head);
            }
            // A batch of distinct in-flight heads, used out of order.
            const batch = [...new Set(step.use.map((k) => inFlight[k % Math.max(1, inFlight.length)]).filter((h): h is number => h !== undefined))];
            if (batch.length === 0) continue;
            for (const head of batch) region.linkUsed(head);
            usedIdx = (usedIdx + batch.length) & 0xffff; // the used ring's idx moves
            for (const head of batch) inFlight.splice(inFlight.indexOf(head), 1);
            if (s === crashStep && midBatch) break; // died before clearing the batch
            region.clearUsed(batch, usedIdx);
            if (s === crashStep) break;
          }
          expect(region.recover(size, usedIdx).heads).toEqual(inFlight);
          expect(region.usedIdx).toBe(usedIdx);
        },
      ),
      { numRuns: 300 },
    );
  });
});
