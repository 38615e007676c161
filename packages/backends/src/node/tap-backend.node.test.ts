import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { IFF_MULTI_QUEUE, IFF_VNET_HDR, TUN_F_CSUM, TUN_F_TSO4 } from '@virtio-ts/host';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, plainNetHdr, type VirtioNetHdr } from '@virtio-ts/device';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import type { NetReceiver } from '../net/net-backend.js';
import { TapNetBackend } from './tap-backend.js';
import { arp, icmpEcho, parseArp, parseIp, parseIpv4, parseMac, udpPartial } from './test-packets.js';

/** Root, iproute2 and /dev/net/tun: needed to create TAPs in a private network namespace. */
function tapGate(): { skip: boolean; reason: string } {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    missing.push('iproute2');
  }
  if (missing.length === 0) return { skip: false, reason: '' };
  if (process.env.CI === 'true') throw new Error(`CI=true: the TAP tests need ${missing.join(', ')}`);
  return { skip: true, reason: ` (skipped: needs ${missing.join(', ')})` };
}

const gate = tapGate();
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

class Collector implements NetReceiver {
  readonly frames: { frame: Uint8Array; hdr: VirtioNetHdr | undefined; port: number }[] = [];
  /** Answers ARP requests for `ourIp` (the kernel asks before replying to us). */
  constructor(
    private readonly reply: (frame: Uint8Array) => void,
    private readonly ourMac: number[],
    private readonly ourIp: number[],
    private readonly port = 0,
  ) {}
  receive(frame: Uint8Array, hdr?: VirtioNetHdr): boolean {
    this.frames.push({ frame: frame.slice(), hdr: hdr && { ...hdr }, port: this.port });
    const a = parseArp(frame);
    if (a?.op === 1 && a.targetIp === this.ourIp.join('.')) this.reply(arp(2, this.ourMac, this.ourIp, parseMac(a.senderMac), parseIp(a.senderIp), parseMac(a.senderMac)));
    return true;
  }
  writable(): void {}
}

async function waitFor<T>(what: string, find: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = find();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(gate.skip)(`TapNetBackend in a private network namespace${gate.reason}`, () => {
  const suffix = randomBytes(3).toString('hex');
  const ns = `vt-${suffix}`;
  const ourMac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
  const ourIp = [10, 77, 0, 2];
  const nsIp = '10.77.0.1';

  beforeAll(() => {
    ip('netns', 'add', ns);
  });
  afterAll(() => {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  });

  /** Opens a TAP here, moves it into the namespace (the fds keep working) and gives it nsIp. */
  function openInNamespace(name: string, queuePairs = 1): TapNetBackend {
    const backend = TapNetBackend.open({ name, queuePairs });
    ip('link', 'set', name, 'netns', ns);
    ip('-n', ns, 'addr', 'add', `${nsIp}/24`, 'dev', name);
    ip('-n', ns, 'link', 'set', name, 'up');
    return backend;
  }

  it('opens with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, a 12-byte header; an ARP request gets a reply and an ICMP echo request built by hand gets an echo reply', async () => {
    const name = `vta${suffix}`;
    const backend = openInNamespace(name);
    try {
      expect(backend.name).toBe(name);
      expect(backend.description).toBe(`tap:${name}`);
      expect(backend.maxQueuePairs).toBe(1);
      expect(backend.offloads).toMatchObject({ csum: true, tso4: true, tso6: true, ecn: true });
      const port = backend.port(0);
      const rx = new Collector((f) => port.send([f]), ourMac, ourIp);
      port.attach(rx);
      expect(port.send([arp(1, ourMac, ourIp, [0, 0, 0, 0, 0, 0], parseIp(nsIp))])).toBe(true);
      const reply = await waitFor('an ARP reply', () => rx.frames.map((f) => parseArp(f.frame)).find((a) => a?.op === 2 && a.senderIp === nsIp));
      const nsMac = ip('-n', ns, '-j', 'link', 'show', name);
      expect(nsMac).toContain(reply.senderMac);
      // ICMP echo (split into two segments) → echo reply from the namespace's stack.
      const echo = icmpEcho(ourMac, parseMac(reply.senderMac), ourIp, parseIp(nsIp), 0x4242, 1);
      port.send([echo.subarray(0, 20), echo.subarray(20)]);
      const pong = await waitFor('an ICMP echo reply', () =>
        rx.frames.map((f) => parseIpv4(f.frame)).find((p) => p?.protocol === 1 && p.payload[0] === 0 && p.src === nsIp && ((p.payload[4]! << 8) | p.payload[5]!) === 0x4242),
      );
      expect(new TextDecoder().decode(pong.payload.subarray(8))).toBe('virtio-ts');
      expect(backend.stats.txFrames).toBeGreaterThanOrEqual(2);
      expect(backend.stats.rxFrames).toBeGreaterThanOrEqual(2);
    } finally {
      await backend.close();
      await backend.close();
    }
    // Closing the only fd of a non-persistent TAP removes the interface.
    expect(() => ip('-n', ns, 'link', 'show', name)).toThrow();
  });

  it('offload header round trip: NEEDS_CSUM out is completed by the kernel; with GUEST_CSUM the kernel hands us NEEDS_CSUM frames (TUNSETOFFLOAD)', async () => {
    const name = `vtb${suffix}`;
    const backend = openInNamespace(name);
    try {
      const port = backend.port(0);
      const rx = new Collector((f) => port.send([f]), ourMac, ourIp);
      port.attach(rx);
      port.send([arp(1, ourMac, ourIp, [0, 0, 0, 0, 0, 0], parseIp(nsIp))]);
      const reply = await waitFor('an ARP reply', () => rx.frames.map((f) => parseArp(f.frame)).find((a) => a?.op === 2));
      const nsMac = parseMac(reply.senderMac);
      // Out: a UDP datagram with only the pseudo-header sum, to a closed port. The kernel answers
      // ICMP port unreachable only if the checksum verifies, i.e. only if it honoured NEEDS_CSUM.
      const udp = udpPartial(ourMac, nsMac, ourIp, parseIp(nsIp), 40000, 9, 'offload');
      port.send([udp.frame], { ...plainNetHdr(), flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: udp.csumStart, csumOffset: udp.csumOffset });
      const unreachable = await waitFor('ICMP port unreachable', () => rx.frames.map((f) => parseIpv4(f.frame)).find((p) => p?.protocol === 1 && p.payload[0] === 3 && p.payload[1] === 3));
      expect(unreachable.src).toBe(nsIp);
      // Control: the same datagram without the header has a wrong checksum and is dropped silently.
      const before = rx.frames.length;
      port.send([udpPartial(ourMac, nsMac, ourIp, parseIp(nsIp), 40001, 9, 'offload').frame]);
      await new Promise((r) => setTimeout(r, 200));
      expect(rx.frames.slice(before).some((f) => parseIpv4(f.frame)?.payload[0] === 3)).toBe(false);
      // In: without guest offloads, frames are complete (no header).
      expect(backend.tunOffloadFlags).toBe(0);
      execFileSync('ip', ['netns', 'exec', ns, 'bash', '-c', `echo plain > /dev/udp/${ourIp.join('.')}/5000`]);
      const plain = await waitFor('a UDP datagram', () => rx.frames.find((f) => parseIpv4(f.frame)?.protocol === 17));
      expect(plain.hdr).toBeUndefined();
      // With GUEST_CSUM + TSO4, the kernel leaves the checksum to us: NEEDS_CSUM at the UDP checksum.
      backend.setGuestOffloads({ csum: true, tso4: true, tso6: false, ufo: false, ecn: false });
      expect(backend.tunOffloadFlags).toBe(TUN_F_CSUM | TUN_F_TSO4);
      const mark = rx.frames.length;
      execFileSync('ip', ['netns', 'exec', ns, 'bash', '-c', `echo partial > /dev/udp/${ourIp.join('.')}/5001`]);
      const partial = await waitFor('a UDP datagram with a header', () => rx.frames.slice(mark).find((f) => parseIpv4(f.frame)?.protocol === 17));
      expect(partial.hdr?.flags).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
      expect(partial.hdr?.csumStart).toBe(34);
      expect(partial.hdr?.csumOffset).toBe(6);
    } finally {
      await backend.close();
    }
  });

  it('multiqueue: queuePairs 3 opens three fds with IFF_MULTI_QUEUE; every queue transmits', async () => {
    const name = `vtc${suffix}`;
    const backend = openInNamespace(name, 3);
    try {
      expect(backend.maxQueuePairs).toBe(3);
      expect(new Set(backend.fds).size).toBe(3);
      const flags = Number(ip('netns', 'exec', ns, 'cat', `/sys/class/net/${name}/tun_flags`).trim());
      expect(flags & IFF_MULTI_QUEUE).toBe(IFF_MULTI_QUEUE);
      expect(flags & IFF_VNET_HDR).toBe(IFF_VNET_HDR);
      const collectors = [0, 1, 2].map((q) => new Collector((f) => backend.port(q).send([f]), ourMac, ourIp, q));
      collectors.forEach((c, q) => backend.port(q).attach(c));
      for (let q = 0; q < 3; q++) backend.port(q).send([arp(1, ourMac, [10, 77, 0, 10 + q], [0, 0, 0, 0, 0, 0], parseIp(nsIp))]);
      await waitFor('three ARP replies', () => {
        const replies = collectors.flatMap((c) => c.frames).filter((f) => parseArp(f.frame)?.op === 2);
        return replies.length >= 3 ? replies : undefined;
      });
      expect(() => backend.port(3)).toThrow(BackendError);
    } finally {
      await backend.close();
    }
  });

  it('multiqueue: a queue is attached (TUNSETQUEUE) only while its port has a receiver, so a guest using one pair of three gets every reply', async () => {
    const name = `vtd${suffix}`;
    const backend = openInNamespace(name, 3);
    try {
      const rx = new Collector((f) => backend.port(0).send([f]), ourMac, ourIp, 0);
      backend.port(0).attach(rx);
      // Eight flows (sender addresses) that the kernel would otherwise spread over three queues.
      for (let i = 0; i < 8; i++) backend.port(0).send([arp(1, ourMac, [10, 77, 0, 20 + i], [0, 0, 0, 0, 0, 0], parseIp(nsIp))]);
      await waitFor('eight ARP replies on queue 0', () => {
        const replies = rx.frames.filter((f) => parseArp(f.frame)?.op === 2);
        return replies.length >= 8 ? replies : undefined;
      });
      expect(backend.stats.rxDropped).toBe(0);
    } finally {
      await backend.close();
    }
  });

  it('a TAP that cannot be opened is a HOST_IO error naming the errno', () => {
    let caught: unknown;
    try {
      TapNetBackend.open({ name: 'vt/bad' }); // the kernel refuses '/' in an interface name: EINVAL
    } catch (error) {
      caught = error;
    }
    expect(BackendError.isInstance(caught)).toBe(true);
    expect((caught as BackendError).code).toBe('HOST_IO');
    expect((caught as BackendError).context.errno).toBe('EINVAL');
    expect(() => TapNetBackend.open({ queuePairs: 0 })).toThrow(/queuePairs/);
    expect(readFileSync('/proc/self/status', 'utf8')).toContain('Name'); // still alive
  });
});
