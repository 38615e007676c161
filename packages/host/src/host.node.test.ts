import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  EPOLLIN, Epoll, EventFd, HostError, Mapping, UnixListener, UnixSocket, closeFd, createMemfd, openPty, readFd, writeFd,
} from './index.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (HostError.isInstance(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('memfd and mmap', () => {
  it('two mappings of one memfd see the same bytes, atomics included', () => {
    const fd = createMemfd('guest-ram', 1 << 20);
    const a = Mapping.map(fd, 1 << 20);
    const b = Mapping.map(fd, 4096, { offset: 8192 });
    new Uint8Array(a.buffer)[8192 + 7] = 0x5a;
    expect(new Uint8Array(b.buffer)[7]).toBe(0x5a);
    Atomics.store(new Uint32Array(b.buffer), 4, 0xfeedface);
    expect(Atomics.load(new Uint32Array(a.buffer), (8192 >> 2) + 4)).toBe(0xfeedface);
    expect(a.buffer).toBeInstanceOf(ArrayBuffer);
    a.unmap();
    a.unmap(); // idempotent
    expect(a.mapped).toBe(false);
    b.unmap();
    closeFd(fd);
  });

  it('errors carry errno names, and bad arguments are caught before the call', () => {
    expect(codeOf(() => closeFd(987654))).toBe('EBADF');
    expect(codeOf(() => Mapping.map(987654, 4096))).toBe('EBADF');
    expect(codeOf(() => Mapping.map(0, 4096, { offset: 100 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => createMemfd('x', 0))).toBe('INVALID_ARGUMENT');
  });
});

describe('pseudo-terminals', () => {
  it('opens a pty whose slave path exists, and bytes written on the slave reach the master', async () => {
    const { openSync, writeSync, closeSync, existsSync: exists } = await import('node:fs');
    const pty = openPty();
    expect(pty.path).toMatch(/^\/dev\/pts\/\d+$/);
    expect(exists(pty.path)).toBe(true);
    const slave = openSync(pty.path, 'r+');
    // Raw bytes without a newline would wait in the line discipline; end with one.
    writeSync(slave, 'hi\n');
    const buffer = new Uint8Array(16);
    const n = readFd(pty.fd, buffer);
    expect(new TextDecoder().decode(buffer.subarray(0, n))).toContain('hi');
    writeFd(pty.fd, new TextEncoder().encode('ok\n'));
    closeSync(slave);
    closeFd(pty.fd);
  });
});

describe('eventfd and epoll', () => {
  it('epoll reports a signalled eventfd with its data, and consume resets the counter', () => {
    const ev = EventFd.create();
    const ep = new Epoll();
    ep.add(ev.fd, EPOLLIN, 42);
    expect(ep.wait(0)).toEqual([]);
    ev.signal();
    ev.signal(2);
    const events = ep.wait(1000);
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toBe(42);
    expect(events[0]!.events & EPOLLIN).toBe(EPOLLIN);
    expect(ev.consume()).toBe(3);
    expect(ev.consume()).toBe(0);
    expect(ep.wait(0)).toEqual([]);
    ep.remove(ev.fd);
    ep.close();
    ev.close();
    expect(codeOf(() => ev.signal())).toBe('CLOSED');
  });

  it('readAsync and waitAsync wait on the thread pool without blocking the event loop', async () => {
    const ev = EventFd.create({ nonBlocking: false });
    const ep = new Epoll();
    ep.add(ev.fd, EPOLLIN, 7);
    const waited = ep.waitAsync(5000);
    setTimeout(() => ev.signal(5), 20);
    expect((await waited)[0]?.data).toBe(7);
    expect(await ev.readAsync()).toBe(5);
    ep.close();
    ev.close();
  });
});

describe('Unix sockets with SCM_RIGHTS', () => {
  it('passes a memfd to the peer, which maps the same memory', () => {
    const [left, right] = UnixSocket.pair();
    const fd = createMemfd('shared', 65536);
    const mine = Mapping.map(fd, 65536);
    new Uint8Array(mine.buffer)[100] = 0x77;
    left.send(new TextEncoder().encode('SET_MEM_TABLE'), [fd]);
    const message = right.receive();
    expect(new TextDecoder().decode(message.data)).toBe('SET_MEM_TABLE');
    expect(message.fds).toHaveLength(1);
    const received = message.fds[0]!;
    expect(received).not.toBe(fd);
    const theirs = Mapping.map(received, 65536);
    expect(new Uint8Array(theirs.buffer)[100]).toBe(0x77);
    theirs.unmap();
    mine.unmap();
    closeFd(received);
    closeFd(fd);
    expect(right.tryReceive()).toBeNull(); // nothing waiting: no block
    left.close();
    expect(right.receive().end).toBe(true);
    right.close();
  });

  it('refuses more fds than it accepts (TRUNCATED) and closes the ones that arrived', () => {
    const [left, right] = UnixSocket.pair({ maxFds: 1 });
    const e1 = EventFd.create();
    const e2 = EventFd.create();
    const before = openFds();
    // Send two fds from a socket allowed to carry them to one that accepts only one.
    const sender = new UnixSocket(left.fd, { maxFds: 8 });
    sender.send(new Uint8Array([1]), [e1.fd, e2.fd]);
    expect(codeOf(() => right.receive())).toBe('TRUNCATED');
    // Four fds overflow the control buffer itself (MSG_CTRUNC from the kernel).
    sender.send(new Uint8Array([2]), [e1.fd, e2.fd, e1.fd, e2.fd]);
    expect(codeOf(() => right.receive())).toBe('TRUNCATED');
    expect(openFds()).toBe(before);
    e1.close();
    e2.close();
    sender.close();
    right.close();
  });

  it('listens, accepts asynchronously and reports a missing socket as ENOENT without leaking', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vt-host-'));
    const socketPath = path.join(dir, 'vhost.sock');
    const listener = UnixListener.listen(socketPath);
    const accepted = listener.accept();
    const client = UnixSocket.connect(socketPath);
    const server = await accepted;
    client.send(new Uint8Array([1, 2, 3]));
    const got = await server.receiveAsync();
    expect([...got.data]).toEqual([1, 2, 3]);
    const before = openFds();
    expect(codeOf(() => UnixSocket.connect(path.join(dir, 'nobody.sock')))).toBe('ENOENT');
    expect(openFds()).toBe(before);
    const quiet = UnixListener.listen(path.join(dir, 'quiet.sock'), 4, { nonBlocking: true });
    expect(quiet.tryAccept()).toBeNull(); // nobody connecting: no block
    const peer = UnixSocket.connect(path.join(dir, 'quiet.sock'));
    const tried = quiet.tryAccept();
    expect(tried).not.toBeNull();
    tried!.close();
    peer.close();
    quiet.close();
    const pending = listener.accept();
    listener.close();
    await expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
    client.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('releases every fd and mapping across many open/close cycles', () => {
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const fd = createMemfd('cycle', 4096);
      Mapping.map(fd, 4096).unmap();
      closeFd(fd);
      const [a, b] = UnixSocket.pair();
      a.close();
      b.close();
      EventFd.create().close();
      new Epoll().close();
    }
    expect(openFds()).toBe(before);
  });
});

// TAP devices need CAP_NET_ADMIN and /dev/net/tun; they are created inside a network namespace the
// test makes, so nothing touches the host's own network.
const tapMissing = process.getuid?.() !== 0 ? 'not root' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun' : spawnSync('ip', ['-V']).status !== 0 ? 'no ip(8)' : '';
if (tapMissing && process.env.CI === 'true') throw new Error(`CI=true: TAP test cannot run: ${tapMissing}`);

describe.skipIf(tapMissing !== '')(`TAP devices${tapMissing ? ` (skipped: ${tapMissing})` : ''}`, () => {
  const ns = `vt-host-${process.pid}`;
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });

  it('opens a TAP with IFF_VNET_HDR in a network namespace, sets offloads, and the kernel sees it', () => {
    const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js');
    if (!existsSync(dist)) execFileSync('pnpm', ['--filter', '@virtio-ts/host', 'build'], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'add', ns]);
    const script = `
      import { Tap, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, IFF_VNET_HDR, IFF_MULTI_QUEUE } from ${JSON.stringify(dist)};
      import { execFileSync } from 'node:child_process';
      const tap = Tap.open({ name: 'vttap0', vnetHeaderSize: 12 });
      tap.setOffload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
      const features = tap.features();
      const link = execFileSync('ip', ['-d', 'link', 'show', 'vttap0'], { encoding: 'utf8' });
      const buffer = new Uint8Array(2048);
      const idle = tap.read(buffer);
      tap.close();
      console.log(JSON.stringify({ name: tap.name, vnet: (features & IFF_VNET_HDR) !== 0, mq: (features & IFF_MULTI_QUEUE) !== 0, link, idle }));
    `;
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').pop()!) as { name: string; vnet: boolean; mq: boolean; link: string; idle: number };
    expect(result.name).toBe('vttap0');
    expect(result.vnet).toBe(true);
    expect(result.link).toMatch(/vttap0/);
    expect(result.link).toMatch(/tun type tap/);
    expect(result.idle).toBe(0);
  });
});
