import { readdirSync } from 'node:fs';
import { BlkDevice, NetDevice } from '@virtio-ts/backends';
import { MemoryDisk, RecordingNetBackend } from '@virtio-ts/backends/testing';
import { EventFd, UnixSocket } from '@virtio-ts/host';
import { describe, expect, it, vi } from 'vitest';
import { HEADER_SIZE, VhostUserRequest, encodeRequest, serveConnection, type ConnectionEnd } from '../index.js';
import { TestFrontend } from '../testing/index.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;
const HEADER = 0x100000;
const DATA = 0x200000;
const STATUS = 0x300000;

/** A blk request: header (type, sector), then data, then a 1-byte status. */
function blkHeader(frontend: TestFrontend, type: number, sector: number): void {
  frontend.memory.writeU32(HEADER, type);
  frontend.memory.writeU32(HEADER + 4, 0);
  frontend.memory.writeU64(HEADER + 8, BigInt(sector));
  frontend.memory.writeU8(STATUS, 0xff);
}

function connect(device: BlkDevice): { frontend: TestFrontend; served: Promise<ConnectionEnd> } {
  const [ours, theirs] = UnixSocket.pair();
  const served = serveConnection(theirs, { device });
  return { frontend: new TestFrontend(ours), served };
}

describe('vhost-user back-end session with a test front-end', () => {
  it('negotiates, sets up two rings, and serves blk writes and reads through guest memory shared by memfd', async () => {
    const disk = new MemoryDisk({ size: 1 << 20 });
    const device = new BlkDevice({ driver: disk, numQueues: 2, queueSize: 64 });
    const { frontend, served } = connect(device);
    await frontend.start({ queues: 2 });
    // Write 4 KiB at sector 8 on queue 1, then read it back on queue 0.
    const payload = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
    frontend.memory.write(DATA, payload);
    blkHeader(frontend, 1 /* OUT */, 8);
    await frontend.submit(1, [{ address: HEADER, length: 16 }, { address: DATA, length: 4096 }], [{ address: STATUS, length: 1 }]);
    expect(frontend.memory.readU8(STATUS)).toBe(0);
    expect(disk.bytes.subarray(8 * 512, 8 * 512 + 4096)).toEqual(payload);
    frontend.memory.fill(DATA, 4096, 0);
    blkHeader(frontend, 0 /* IN */, 8);
    const length = await frontend.submit(0, [{ address: HEADER, length: 16 }], [{ address: DATA, length: 4096 }, { address: STATUS, length: 1 }]);
    expect(length).toBe(4097);
    expect(frontend.memory.slice(DATA, 4096)).toEqual(payload);
    // GET_VRING_BASE stops the ring and reports where the device got to.
    frontend.send({ type: 'GET_VRING_BASE', index: 0, num: 0 });
    const base = await frontend.reply();
    expect(new DataView(base.payload.buffer, base.payload.byteOffset).getUint32(4, true)).toBe(1);
    frontend.close();
    const end = await served;
    expect(end.reason).toBe('closed');
    expect(end.kicks).toEqual([1, 1]);
  });

  it('GET_VRING_BASE does not wait for the guest when a net device holds receive buffers for a frame that does not fit yet (quiesce)', async () => {
    const backend = new RecordingNetBackend();
    const device = new NetDevice({ backend, controlQueue: false, queueSize: 64 });
    const [ours, theirs] = UnixSocket.pair();
    // Without quiesce the drain would give up after this long and end the session with an error.
    const served = serveConnection(theirs, { device, drainTimeoutMs: 2_000 });
    const frontend = new TestFrontend(ours);
    await frontend.start({ queues: 2 });
    const port = backend.ports[0]!;
    // One 64-byte receive buffer (merged buffers negotiated; its kick activates the device) for a
    // 1500-byte frame: the device keeps the buffer and waits for more.
    frontend.post(0, [], [{ address: DATA, length: 64 }], 7);
    await vi.waitFor(() => expect(port.receiver).toBeDefined());
    expect(port.deliver(new Uint8Array(1500).fill(0xab))).toBe(false);
    expect(device.heldRxBuffers).toBe(1);
    frontend.send({ type: 'GET_VRING_BASE', index: 0, num: 0 });
    const base = await frontend.reply();
    expect(new DataView(base.payload.buffer, base.payload.byteOffset).getUint32(4, true)).toBe(1);
    // The buffer came back empty; the frame stays with the back-end.
    expect(await frontend.collect(0, 1)).toEqual([{ token: 7, length: 0 }]);
    expect(port.backlog).toHaveLength(1);
    frontend.close();
    expect((await served).reason).toBe('closed');
  });

  it('GET_CONFIG answers from the device config space; an access past it gets the zero-length error reply', async () => {
    const device = new BlkDevice({ driver: new MemoryDisk({ size: 1 << 20 }), queueSize: 64 });
    const { frontend, served } = connect(device);
    await frontend.start({ queues: 1 });
    frontend.send({ type: 'GET_CONFIG', offset: 0, size: 8, flags: 0, payload: new Uint8Array(8) });
    const ok = await frontend.reply();
    expect(new DataView(ok.payload.buffer, ok.payload.byteOffset).getBigUint64(12, true)).toBe(2048n); // capacity in sectors
    frontend.send({ type: 'GET_CONFIG', offset: 200, size: 56, flags: 0, payload: new Uint8Array(56) });
    expect((await frontend.reply()).payload.length).toBe(0);
    frontend.close();
    expect((await served).reason).toBe('closed');
  });

  it('H8: a memory table change waits for in-flight requests before unmapping their memory', async () => {
    const disk = new MemoryDisk({ size: 1 << 20, manual: true });
    const device = new BlkDevice({ driver: disk, queueSize: 64 });
    const { frontend, served } = connect(device);
    await frontend.start({ queues: 1 });
    frontend.memory.fill(DATA, 4096, 0x5a);
    blkHeader(frontend, 1, 0);
    const write = frontend.submit(0, [{ address: HEADER, length: 16 }, { address: DATA, length: 4096 }], [{ address: STATUS, length: 1 }]);
    while (disk.held.length === 0) await new Promise((r) => setTimeout(r, 1));
    // The front-end replaces the table while the write is held in the disk.
    frontend.send({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: frontend.size, userAddress: frontend.userBase, mmapOffset: 0 }], fds: [frontend.memoryFd] }, true);
    const acked = frontend.reply();
    await new Promise((r) => setTimeout(r, 50));
    let ackedYet = false;
    void acked.then(() => (ackedYet = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(ackedYet).toBe(false); // still draining
    // Release every held operation (without FLUSH negotiated a write-through flush follows the write).
    let done = false;
    void write.then(() => (done = true));
    while (!done) {
      disk.held.shift()?.release();
      await new Promise((r) => setTimeout(r, 1));
    }
    await acked;
    expect(frontend.memory.readU8(STATUS)).toBe(0);
    expect(disk.bytes[100]).toBe(0x5a);
    frontend.close();
    expect((await served).reason).toBe('closed');
  });
});

describe('hostile front-ends: a clear error closes that connection only, and nothing leaks', () => {
  const device = new BlkDevice({ driver: new MemoryDisk({ size: 1 << 20 }), queueSize: 64 });
  const u64 = (v: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  const raw = (request: number, payload: Uint8Array, size = payload.length): Uint8Array => {
    const bytes = new Uint8Array(HEADER_SIZE + payload.length);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, request, true);
    v.setUint32(4, 1, true);
    v.setUint32(8, size, true);
    bytes.set(payload, HEADER_SIZE);
    return bytes;
  };

  const cases: [string, (f: TestFrontend) => Promise<void> | void, string][] = [
    ['an unknown request', (f) => f.sendRaw(raw(9999, new Uint8Array())), 'UNKNOWN_REQUEST'],
    ['a payload size that disagrees with the request', (f) => f.sendRaw(raw(VhostUserRequest.SET_FEATURES, new Uint8Array(4))), 'BAD_SIZE'],
    ['a header announcing 1 MiB of payload', (f) => f.sendRaw(raw(VhostUserRequest.SET_FEATURES, new Uint8Array(0), 1 << 20)), 'BAD_SIZE'],
    ['SET_VRING_KICK without its fd', (f) => f.sendRaw(raw(VhostUserRequest.SET_VRING_KICK, u64(0n))), 'BAD_FDS'],
    ['an extra fd on SET_OWNER', (f) => f.sendRaw(raw(VhostUserRequest.SET_OWNER, new Uint8Array()), [f.memoryFd]), 'BAD_FDS'],
    ['features that were not offered', (f) => f.send({ type: 'SET_FEATURES', value: 1n << 63n }), 'PROTOCOL_VIOLATION'],
    ['vring index 0xFFFF', (f) => f.send({ type: 'SET_VRING_NUM', index: 0xffff, num: 64 }), 'BAD_PAYLOAD'],
    ['a queue size that is not a power of two', (f) => f.send({ type: 'SET_VRING_NUM', index: 0, num: 48 }), 'BAD_PAYLOAD'],
    ['overlapping memory regions', (f) => {
      const a = { guestAddress: 0, size: 1 << 20, userAddress: f.userBase, mmapOffset: 0 };
      f.send({ type: 'SET_MEM_TABLE', regions: [a, { ...a, guestAddress: 1 << 19, userAddress: f.userBase + (1n << 30n) }], fds: [f.memoryFd, f.memoryFd] });
    }, 'BAD_PAYLOAD'],
    ['a region larger than its memfd (would SIGBUS)', (f) => f.send({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: f.size * 4, userAddress: f.userBase, mmapOffset: 0 }], fds: [f.memoryFd] }), 'BAD_PAYLOAD'],
    ['a vring outside the shared memory', (f) => {
      f.send({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: f.size, userAddress: f.userBase, mmapOffset: 0 }], fds: [f.memoryFd] });
      f.send({ type: 'SET_VRING_NUM', index: 0, num: 64 });
      f.send({ type: 'SET_VRING_ADDR', index: 0, flags: 0, descUserAddress: 0x1000n, usedUserAddress: 0x2000n, availUserAddress: 0x3000n, logGuestAddress: 0n });
      const kick = EventFd.create();
      f.kicks.push(kick);
      f.send({ type: 'SET_VRING_KICK', index: 0, fd: kick.fd });
    }, 'BAD_PAYLOAD'],
    ['a vring started before any memory table', (f) => {
      f.send({ type: 'SET_VRING_NUM', index: 0, num: 64 });
      f.send({ type: 'SET_VRING_ADDR', index: 0, flags: 0, descUserAddress: 0x1000n, usedUserAddress: 0x2000n, availUserAddress: 0x3000n, logGuestAddress: 0n });
      const kick = EventFd.create();
      f.kicks.push(kick);
      f.send({ type: 'SET_VRING_KICK', index: 0, fd: kick.fd });
    }, 'PROTOCOL_VIOLATION'],
    ['SET_INFLIGHT_FD without INFLIGHT_SHMFD negotiated', (f) => f.send({ type: 'SET_INFLIGHT_FD', mmapSize: 4096, mmapOffset: 0, numQueues: 1, queueSize: 64, fd: f.memoryFd }), 'PROTOCOL_VIOLATION'],
    ['an inflight buffer past the end of its file (would SIGBUS)', (f) => {
      f.send({ type: 'SET_PROTOCOL_FEATURES', value: 1n << 12n });
      f.send({ type: 'SET_INFLIGHT_FD', mmapSize: f.size * 2, mmapOffset: 0, numQueues: 1, queueSize: 64, fd: f.memoryFd });
    }, 'BAD_PAYLOAD'],
    ['an inflight buffer for more queues than the device has', (f) => {
      f.send({ type: 'SET_PROTOCOL_FEATURES', value: 1n << 12n });
      f.send({ type: 'SET_INFLIGHT_FD', mmapSize: 4 << 20, mmapOffset: 0, numQueues: 9, queueSize: 64, fd: f.memoryFd });
    }, 'BAD_PAYLOAD'],
    ['a kick fd that epoll cannot watch (a memfd)', (f) => {
      const kick = encodeRequest({ type: 'SET_VRING_KICK', index: 0, fd: f.memoryFd });
      f.sendRaw(kick.bytes, kick.fds);
    }, 'EPERM'],
  ];

  for (const [what, act, code] of cases) {
    it(`${what} → ${code}`, async () => {
      const before = openFds();
      const { frontend, served } = connect(device);
      await act(frontend);
      const end = await served;
      expect(end.reason).toBe('error');
      expect(end.error && 'code' in end.error ? end.error.code : undefined).toBe(code);
      frontend.close();
      expect(openFds()).toBe(before);
    });
  }

  it('after all of that, the same device serves a well-behaved front-end', async () => {
    const { frontend, served } = connect(device);
    await frontend.start({ queues: 1 });
    blkHeader(frontend, 4 /* FLUSH */, 0);
    await frontend.submit(0, [{ address: HEADER, length: 16 }], [{ address: STATUS, length: 1 }]);
    expect(frontend.memory.readU8(STATUS)).toBe(0);
    frontend.close();
    expect((await served).reason).toBe('closed');
  });
});
