import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import type { NetReceiver } from '../net/net-backend.js';
import { StreamNetBackend } from './stream-backend.js';
import { STREAM_MAX_FRAME, StreamFrameDecoder, encodeStreamFrame } from './stream-framing.js';

function frameOf(length: number, seed: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (seed + i * 7) & 0xff;
  return f;
}

function lengthPrefix(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, false);
  return b;
}

describe('stream framing (QEMU -netdev stream: 4-byte big-endian length + frame)', () => {
  it('round-trips any frames however the byte stream is split (split lengths, several frames per chunk)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 900 }), { minLength: 1, maxLength: 20 }),
        (lengths, cuts) => {
          const frames = lengths.map((n, i) => frameOf(n, i));
          const parts = frames.map((f, i) => encodeStreamFrame(i % 2 === 0 ? [f] : [f.subarray(0, 3), f.subarray(3)]));
          const stream = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
          let at = 0;
          for (const p of parts) {
            stream.set(p, at);
            at += p.length;
          }
          const decoder = new StreamFrameDecoder();
          const out: Uint8Array[] = [];
          let pos = 0;
          let c = 0;
          while (pos < stream.length) {
            const end = Math.min(stream.length, pos + cuts[c++ % cuts.length]!);
            decoder.push(stream.subarray(pos, end));
            pos = end;
            for (let f = decoder.next(); f !== undefined; f = decoder.next()) out.push(f.slice());
          }
          expect(out.length).toBe(frames.length);
          out.forEach((f, i) => expect(Buffer.compare(f, frames[i]!)).toBe(0));
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('refuses a hostile length (0 or above 65535 + 14) with PEER_PROTOCOL before buffering it; accepts exactly the maximum', () => {
    for (const bad of [0, STREAM_MAX_FRAME + 1, 0x7fffffff, 0xffffffff]) {
      const d = new StreamFrameDecoder();
      d.push(lengthPrefix(bad));
      let caught: unknown;
      try {
        d.next();
      } catch (error) {
        caught = error;
      }
      expect(BackendError.isInstance(caught) && caught.code === 'PEER_PROTOCOL', String(caught)).toBe(true);
    }
    fc.assert(
      fc.property(fc.integer({ min: STREAM_MAX_FRAME + 1, max: 0xffffffff }), (n) => {
        const d = new StreamFrameDecoder();
        d.push(lengthPrefix(n));
        expect(() => d.next()).toThrow(/PEER_PROTOCOL/);
      }),
      { numRuns: 100 },
    );
    const d = new StreamFrameDecoder();
    d.push(encodeStreamFrame([new Uint8Array(STREAM_MAX_FRAME)]));
    expect(d.next()?.length).toBe(STREAM_MAX_FRAME);
  });
});

class Recorder implements NetReceiver {
  readonly frames: Uint8Array[] = [];
  accept = true;
  writableCalls = 0;
  private waiters: { count: number; resolve: () => void }[] = [];
  receive(f: Uint8Array): boolean {
    if (!this.accept) return false;
    this.frames.push(f.slice());
    for (const w of [...this.waiters]) {
      if (this.frames.length >= w.count) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    return true;
  }
  writable(): void {
    this.writableCalls++;
  }
  until(count: number): Promise<void> {
    if (this.frames.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }
}

function connectRaw(file: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(file, () => resolve(s));
    s.once('error', reject);
  });
}

function readFrames(socket: Socket, count: number): Promise<Uint8Array[]> {
  const decoder = new StreamFrameDecoder();
  const out: Uint8Array[] = [];
  return new Promise((resolve) => {
    const onData = (chunk: Buffer): void => {
      decoder.push(chunk);
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) out.push(f.slice());
      if (out.length >= count) {
        socket.off('data', onData);
        resolve(out);
      }
    };
    socket.on('data', onData);
  });
}

const closed = (s: Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

describe('StreamNetBackend over a Unix socket', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vt-stream-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('server: frames in both directions, split writes, a second peer refused, a hostile length closes only that connection', async () => {
    const errors: BackendError[] = [];
    const file = path.join(dir, 'a.sock');
    const backend = await StreamNetBackend.listen({ path: file }, { onError: (e) => errors.push(e) });
    const r = new Recorder();
    backend.port(0).attach(r);
    try {
      const peer = await connectRaw(file);
      await backend.waitForPeer();
      // Three frames, written byte-split: a length across two writes, two frames in one write.
      const frames = [frameOf(60, 1), frameOf(1514, 2), frameOf(14, 3)];
      const bytes = Buffer.concat(frames.map((f) => encodeStreamFrame([f])));
      peer.write(bytes.subarray(0, 2));
      await new Promise((res) => setTimeout(res, 10));
      peer.write(bytes.subarray(2, 70));
      peer.write(bytes.subarray(70));
      await r.until(3);
      expect(r.frames).toEqual(frames);
      // Transmit: the peer sees length-prefixed frames.
      const got = readFrames(peer, 2);
      expect(backend.port(0).send([frameOf(42, 9).subarray(0, 20), frameOf(42, 9).subarray(20)])).toBe(true);
      expect(backend.port(0).send([frameOf(1000, 5)])).toBe(true);
      expect(await got).toEqual([frameOf(42, 9), frameOf(1000, 5)]);
      // One peer at a time.
      const second = await connectRaw(file);
      await closed(second);
      expect(backend.stats.refusedPeers).toBe(1);
      // A hostile length closes that connection with a typed error...
      peer.write(lengthPrefix(0x10000000));
      await closed(peer);
      expect(errors.map((e) => e.code)).toContain('PEER_PROTOCOL');
      expect(backend.stats.protocolErrors).toBe(1);
      // ...and the back-end keeps listening: a new peer works.
      const third = await connectRaw(file);
      await backend.waitForPeer();
      third.write(encodeStreamFrame([frameOf(100, 4)]));
      await r.until(4);
      expect(r.frames[3]).toEqual(frameOf(100, 4));
      third.destroy();
      expect(backend.stats).toMatchObject({ rxFrames: 4, txFrames: 2, txBytes: 1042, connections: 2 });
    } finally {
      await backend.close();
      await backend.close();
    }
  });

  it('property over a real socket: any frames, split anywhere, arrive whole and in order; a hostile length after them closes only that connection', async () => {
    const file = path.join(dir, 'p.sock');
    const errors: BackendError[] = [];
    const backend = await StreamNetBackend.listen({ path: file }, { onError: (e) => errors.push(e) });
    const r = new Recorder();
    backend.port(0).attach(r);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 14, max: 1600 }), { minLength: 1, maxLength: 8 }),
          fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
          fc.option(fc.oneof(fc.constant(0), fc.integer({ min: STREAM_MAX_FRAME + 1, max: 0xffffffff })), { nil: undefined }),
          async (lengths, cuts, hostile) => {
            r.frames.length = 0;
            const before = backend.stats.protocolErrors;
            const frames = lengths.map((n, i) => frameOf(n, i * 13));
            const parts = frames.map((f) => encodeStreamFrame([f]));
            if (hostile !== undefined) parts.push(lengthPrefix(hostile), new Uint8Array(16));
            const bytes = Buffer.concat(parts);
            const peer = await connectRaw(file);
            await backend.waitForPeer();
            for (let pos = 0, c = 0; pos < bytes.length; c++) {
              const end = Math.min(bytes.length, pos + cuts[c % cuts.length]!);
              peer.write(bytes.subarray(pos, end));
              pos = end;
            }
            await r.until(frames.length);
            expect(r.frames).toEqual(frames);
            if (hostile !== undefined) {
              await closed(peer);
              expect(backend.stats.protocolErrors).toBe(before + 1);
              expect(errors.at(-1)?.code).toBe('PEER_PROTOCOL');
            } else {
              peer.destroy();
              await closed(peer);
            }
            while (backend.connected) await new Promise((res) => setTimeout(res, 2));
          },
        ),
        { numRuns: 25 },
      );
    } finally {
      await backend.close();
    }
  });

  it('a receiver without buffers pauses delivery; resumeReceive hands over the kept frame first, in order', async () => {
    const file = path.join(dir, 'b.sock');
    const backend = await StreamNetBackend.listen({ path: file });
    const r = new Recorder();
    r.accept = false;
    backend.port(0).attach(r);
    try {
      const peer = await connectRaw(file);
      const frames = Array.from({ length: 20 }, (_, i) => frameOf(64, i));
      peer.write(Buffer.concat(frames.map((f) => encodeStreamFrame([f]))));
      await new Promise((res) => setTimeout(res, 50));
      expect(r.frames.length).toBe(0);
      expect(backend.stats.rxDropped).toBe(0);
      r.accept = true;
      backend.port(0).resumeReceive();
      await r.until(20);
      expect(r.frames).toEqual(frames);
      peer.destroy();
    } finally {
      await backend.close();
    }
  });

  it('back-pressure: once the socket buffer is full send returns false (frame not taken) until writable()', async () => {
    const file = path.join(dir, 'c.sock');
    const backend = await StreamNetBackend.listen({ path: file });
    const r = new Recorder();
    backend.port(0).attach(r);
    try {
      const peer = await connectRaw(file);
      await backend.waitForPeer();
      peer.pause(); // the peer stops reading
      const big = frameOf(65000, 1);
      let accepted = 0;
      while (backend.port(0).send([big])) accepted++;
      expect(accepted).toBeGreaterThan(0);
      expect(backend.stats.txFrames).toBe(accepted + 0);
      const read = readFrames(peer, accepted);
      peer.resume();
      await read;
      await new Promise((res) => setTimeout(res, 20));
      expect(r.writableCalls).toBe(1);
      expect(backend.port(0).send([big])).toBe(true);
      peer.destroy();
    } finally {
      await backend.close();
    }
  });

  it('client: connects to a server (our own), reconnects after the server side drops it', async () => {
    const file = path.join(dir, 'd.sock');
    const server = await StreamNetBackend.listen({ path: file });
    const rs = new Recorder();
    server.port(0).attach(rs);
    const client = await StreamNetBackend.connect({ path: file }, { reconnectMs: 20 });
    const rc = new Recorder();
    client.port(0).attach(rc);
    try {
      await server.waitForPeer();
      client.port(0).send([frameOf(60, 1)]);
      server.port(0).send([frameOf(61, 2)]);
      await Promise.all([rs.until(1), rc.until(1)]);
      expect(rs.frames[0]).toEqual(frameOf(60, 1));
      expect(rc.frames[0]).toEqual(frameOf(61, 2));
      // Server restarts: the client notices and reconnects.
      await server.close();
      await new Promise((res) => setTimeout(res, 30));
      expect(client.connected).toBe(false);
      expect(client.port(0).send([frameOf(60, 3)])).toBe(true); // dropped: no peer
      expect(client.stats.txDropped).toBe(1);
      const again = await StreamNetBackend.listen({ path: file });
      const ra = new Recorder();
      again.port(0).attach(ra);
      await again.waitForPeer();
      await client.waitForPeer();
      client.port(0).send([frameOf(70, 4)]);
      await ra.until(1);
      expect(ra.frames[0]).toEqual(frameOf(70, 4));
      await again.close();
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('connect without reconnect rejects with HOST_IO naming the errno', async () => {
    let caught: unknown;
    try {
      await StreamNetBackend.connect({ path: path.join(dir, 'nobody.sock') });
    } catch (error) {
      caught = error;
    }
    expect(BackendError.isInstance(caught)).toBe(true);
    expect((caught as BackendError).code).toBe('HOST_IO');
    expect((caught as BackendError).context.errno).toBe('ENOENT');
  });

  it('works over TCP on loopback too', async () => {
    const server = await StreamNetBackend.listen({ host: '127.0.0.1', port: 0 });
    const rs = new Recorder();
    server.port(0).attach(rs);
    const client = await StreamNetBackend.connect({ host: '127.0.0.1', port: server.listeningPort! });
    try {
      await server.waitForPeer();
      client.port(0).send([frameOf(1514, 8)]);
      await rs.until(1);
      expect(rs.frames[0]).toEqual(frameOf(1514, 8));
      expect(client.description).toBe(`stream:127.0.0.1:${server.listeningPort}`);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
