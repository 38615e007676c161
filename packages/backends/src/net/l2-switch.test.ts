import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, plainNetHdr, internetChecksum, onesComplementSum, type VirtioNetHdr } from '@virtio-ts/device';
import { BackendError } from '../errors.js';
import { L2Switch } from './l2-switch.js';
import { NO_NET_OFFLOADS, type NetBackend, type NetReceiver } from './net-backend.js';

const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

function mac(n: number): number[] {
  return [0x52, 0x54, 0x00, 0x00, (n >> 8) & 0xff, n & 0xff];
}

function frame(dst: readonly number[], src: readonly number[], payload = 46, tag = 0): Uint8Array {
  const f = new Uint8Array(14 + payload);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental EtherType
  if (payload > 0) f[14] = tag & 0xff;
  if (payload > 1) f[15] = (tag >> 8) & 0xff;
  return f;
}

class Recorder implements NetReceiver {
  readonly frames: Uint8Array[] = [];
  readonly hdrs: (VirtioNetHdr | undefined)[] = [];
  accept = true;
  batchEnds = 0;
  writableCalls = 0;
  receive(f: Uint8Array, hdr?: VirtioNetHdr): boolean {
    if (!this.accept) return false;
    this.frames.push(f.slice());
    this.hdrs.push(hdr);
    return true;
  }
  receiveBatchEnd(): void {
    this.batchEnds++;
  }
  writable(): void {
    this.writableCalls++;
  }
}

function attach(port: NetBackend): Recorder {
  const r = new Recorder();
  port.port(0).attach(r);
  return r;
}

describe('L2Switch', () => {
  it('floods an unknown unicast to every other port, then forwards once the destination is learned', () => {
    const lan = new L2Switch();
    const [a, b, c] = [lan.connect('a'), lan.connect('b'), lan.connect('c')];
    const [ra, rb, rc] = [attach(a), attach(b), attach(c)];
    a.port(0).send([frame(mac(2), mac(1))]);
    expect([ra.frames.length, rb.frames.length, rc.frames.length]).toEqual([0, 1, 1]);
    b.port(0).send([frame(mac(1), mac(2))]); // mac(1) was learned on a: forwarded only there
    expect([ra.frames.length, rb.frames.length, rc.frames.length]).toEqual([1, 1, 1]);
    a.port(0).send([frame(mac(2), mac(1))]); // mac(2) learned on b now
    expect([ra.frames.length, rb.frames.length, rc.frames.length]).toEqual([1, 2, 1]);
    expect(lan.stats).toMatchObject({ flooded: 1, forwarded: 2, learned: 2 });
    expect(lan.addresses()).toEqual(new Map([['52:54:00:00:00:01', 'a'], ['52:54:00:00:00:02', 'b']]));
    expect(a.stats).toMatchObject({ txFrames: 2, txBytes: 120, rxFrames: 1, rxBytes: 60 });
    expect(a.description).toBe('switch:lan0/a');
  });

  it('floods broadcast and multicast, and never learns a group source address', () => {
    const lan = new L2Switch();
    const ports = [lan.connect(), lan.connect(), lan.connect()];
    const rs = ports.map(attach);
    ports[0]!.port(0).send([frame(BROADCAST, mac(1))]);
    ports[1]!.port(0).send([frame([0x01, 0x00, 0x5e, 0, 0, 1], mac(2))]);
    ports[2]!.port(0).send([frame(mac(9), [0x01, 0, 0, 0, 0, 7])]);
    expect(rs.map((r) => r.frames.length)).toEqual([2, 2, 2]);
    expect([...lan.addresses().keys()].sort()).toEqual(['52:54:00:00:00:01', '52:54:00:00:00:02']);
  });

  it('never sends a frame back to its source port (no hairpin), even when the destination was learned there', () => {
    const lan = new L2Switch();
    const [a, b] = [lan.connect('a'), lan.connect('b')];
    const [ra, rb] = [attach(a), attach(b)];
    a.port(0).send([frame(BROADCAST, mac(1))]);
    a.port(0).send([frame(BROADCAST, mac(3))]);
    a.port(0).send([frame(mac(3), mac(1))]); // both behind a
    expect(ra.frames.length).toBe(0);
    expect(rb.frames.length).toBe(2);
    expect(lan.stats.filtered).toBe(1);
  });

  it('ages learned addresses out after ageingMs (injected clock) and floods again', () => {
    let now = 0;
    const lan = new L2Switch({ ageingMs: 1000, clock: { now: () => now } });
    const [a, b, c] = [lan.connect('a'), lan.connect('b'), lan.connect('c')];
    const [, rb, rc] = [attach(a), attach(b), attach(c)];
    b.port(0).send([frame(BROADCAST, mac(2))]);
    now = 1000;
    a.port(0).send([frame(mac(2), mac(1))]);
    expect([rb.frames.length, rc.frames.length]).toEqual([1, 1]); // still fresh at exactly ageingMs
    now = 2001;
    a.port(0).send([frame(mac(2), mac(1))]);
    expect([rb.frames.length, rc.frames.length]).toEqual([2, 2]); // aged: flooded
    expect(lan.stats.aged).toBe(1);
    expect(lan.addresses().has('52:54:00:00:00:02')).toBe(false);
  });

  it('forgets the addresses of a port that disconnects, and a closed port drops what it is given', async () => {
    const lan = new L2Switch();
    const [a, b, c] = [lan.connect('a'), lan.connect('b'), lan.connect('c')];
    const [, , rc] = [attach(a), attach(b), attach(c)];
    b.port(0).send([frame(BROADCAST, mac(2))]);
    expect(rc.frames.length).toBe(1);
    await b.close();
    await b.close(); // idempotent
    expect(lan.portCount).toBe(2);
    expect(lan.addresses().size).toBe(0);
    a.port(0).send([frame(mac(2), mac(1))]);
    expect(rc.frames.length).toBe(2); // flooded: b's address is gone
    expect(b.port(0).send([frame(BROADCAST, mac(2))])).toBe(true);
    expect(b.stats.txDropped).toBe(1);
    expect(rc.frames.length).toBe(2);
  });

  it('keeps up to maxQueuedFrames for a receiver without buffers, delivers them in order on resumeReceive, drops and counts the rest', () => {
    const lan = new L2Switch({ maxQueuedFrames: 3 });
    const [a, b] = [lan.connect('a'), lan.connect('b')];
    attach(a);
    const rb = attach(b);
    rb.accept = false;
    for (let i = 0; i < 6; i++) a.port(0).send([frame(BROADCAST, mac(1), 46, i)]);
    // The refused frame is kept (NetReceiver.receive: "the back-end keeps this frame"), then 2 more.
    expect(b.stats.rxDropped).toBe(3);
    rb.accept = true;
    b.port(0).resumeReceive();
    expect(rb.frames.map((f) => f[14])).toEqual([0, 1, 2]);
    expect(b.stats).toMatchObject({ rxFrames: 3, rxDropped: 3 });
    a.port(0).send([frame(BROADCAST, mac(1), 46, 9)]);
    expect(rb.frames.map((f) => f[14])).toEqual([0, 1, 2, 9]);
  });

  it('drops and counts frames for a detached port; a sender is never blocked by it', () => {
    const lan = new L2Switch();
    const [a, b] = [lan.connect('a'), lan.connect('b')];
    expect(a.port(0).send([frame(BROADCAST, mac(1))])).toBe(true);
    expect(b.stats.rxDropped).toBe(1);
    const rb = attach(b);
    b.port(0).detach();
    a.port(0).send([frame(BROADCAST, mac(1))]);
    expect(rb.frames.length).toBe(0);
    expect(b.stats.rxDropped).toBe(2);
  });

  it('gathers a frame given in several segments (the MAC header split across them)', () => {
    const lan = new L2Switch();
    const [a, b] = [lan.connect('a'), lan.connect('b')];
    const rb = attach(b);
    const f = frame(BROADCAST, mac(1), 100, 0x1234);
    a.port(0).send([f.subarray(0, 3), f.subarray(3, 9), f.subarray(9, 9), f.subarray(9)]);
    expect(rb.frames[0]).toEqual(f);
    expect(lan.addresses().get('52:54:00:00:00:01')).toBe('a');
  });

  it('refuses runts and frames over the MTU (counted as txDropped), carries one of exactly MTU + 14', () => {
    const lan = new L2Switch({ mtu: 1500 });
    const [a, b] = [lan.connect('a'), lan.connect('b')];
    const rb = attach(b);
    a.port(0).send([new Uint8Array(13)]);
    a.port(0).send([frame(BROADCAST, mac(1), 1500 + 4 + 1)]);
    a.port(0).send([frame(BROADCAST, mac(1), 1500)]);
    expect(a.stats.txDropped).toBe(2);
    expect(rb.frames.map((f) => f.length)).toEqual([1514]);
  });

  it('calls receiveBatchEnd once per port for a burst, after the current task', async () => {
    const lan = new L2Switch();
    const [a, b] = [lan.connect('a'), lan.connect('b')];
    const rb = attach(b);
    for (let i = 0; i < 10; i++) a.port(0).send([frame(BROADCAST, mac(1))]);
    expect(rb.batchEnds).toBe(0);
    await Promise.resolve();
    expect(rb.batchEnds).toBe(1);
    expect(rb.frames.length).toBe(10);
  });

  it('a receiver that sends from inside receive() gets its frame switched after the current one', () => {
    const lan = new L2Switch();
    const [a, b, c] = [lan.connect('a'), lan.connect('b'), lan.connect('c')];
    const order: string[] = [];
    a.port(0).attach({ receive: (f) => (order.push(`a:${f[14]}`), true), writable() {} });
    b.port(0).attach({
      receive: (f) => {
        order.push(`b:${f[14]}`);
        if (f[14] === 1) b.port(0).send([frame(BROADCAST, mac(2), 46, 2)]);
        return true;
      },
      writable() {},
    });
    c.port(0).attach({ receive: (f) => (order.push(`c:${f[14]}`), true), writable() {} });
    a.port(0).send([frame(BROADCAST, mac(1), 46, 1)]);
    expect(order).toEqual(['b:1', 'c:1', 'a:2', 'c:2']);
  });

  it('has one queue pair per port and validates its options', () => {
    const lan = new L2Switch();
    const a = lan.connect();
    expect(a.maxQueuePairs).toBe(1);
    expect(a.offloads).toEqual(NO_NET_OFFLOADS);
    expect(() => a.port(1)).toThrow(BackendError);
    expect(() => new L2Switch({ mtu: 10 })).toThrow(/mtu/);
    expect(() => new L2Switch({ maxAddresses: 0 })).toThrow(/maxAddresses/);
  });

  it('evicts the oldest-learned address when the table is full', () => {
    const lan = new L2Switch({ maxAddresses: 2 });
    const a = lan.connect('a');
    lan.connect('b');
    for (const n of [1, 2, 3]) a.port(0).send([frame(BROADCAST, mac(n))]);
    expect([...lan.addresses().keys()]).toEqual(['52:54:00:00:00:02', '52:54:00:00:00:03']);
    expect(lan.stats.evicted).toBe(1);
  });

  it('uplink: wires a host back-end to a port both ways; a refused send is kept until writable()', async () => {
    const lan = new L2Switch({ maxQueuedFrames: 4 });
    const sent: Uint8Array[] = [];
    let full = false;
    let hostReceiver: NetReceiver | undefined;
    let guestOffloadsSet: unknown;
    const host: NetBackend = {
      description: 'fake:host', maxQueuePairs: 1, offloads: NO_NET_OFFLOADS, mtu: 1500,
      stats: { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txDropped: 0 },
      port: () => ({
        send: (segments) => (full ? false : (sent.push(segments[0]!.slice()), true)),
        attach: (r) => void (hostReceiver = r),
        detach: () => void (hostReceiver = undefined),
        resumeReceive: () => undefined,
      }),
      setGuestOffloads: (o) => void (guestOffloadsSet = o),
      close: () => Promise.resolve(),
    };
    const up = lan.uplink(host, 'wan');
    expect(up.description).toBe('switch:lan0/wan');
    expect(guestOffloadsSet).toEqual(NO_NET_OFFLOADS);
    const vm = lan.connect('vm');
    const rvm = attach(vm);
    hostReceiver!.receive(frame(BROADCAST, mac(7), 46, 1));
    expect(rvm.frames.map((f) => f[14])).toEqual([1]);
    full = true;
    vm.port(0).send([frame(mac(7), mac(1), 46, 2)]);
    vm.port(0).send([frame(mac(7), mac(1), 46, 3)]);
    expect(sent.length).toBe(0);
    full = false;
    hostReceiver!.writable();
    expect(sent.map((f) => f[14])).toEqual([2, 3]);
    await up.close();
    expect(hostReceiver).toBeUndefined();
    expect(lan.portCount).toBe(1);
    // Closing the switch unplugs uplinked back-ends too.
    lan.uplink(host, 'wan2');
    expect(hostReceiver).toBeDefined();
    lan.close();
    expect(hostReceiver).toBeUndefined();
  });

  describe('offloads (VIRTIO 1.3 §5.1.6.2)', () => {
    const csumOffloads = { csum: true, tso4: true, tso6: true, ufo: false, ecn: false };

    function udpWithPartialChecksum(): { bytes: Uint8Array; hdr: VirtioNetHdr; expected: number } {
      // IPv4 + UDP with payload; the checksum field holds the pseudo-header sum (what Linux puts there).
      const f = frame(BROADCAST, mac(1), 20 + 8 + 11);
      f[12] = 0x08;
      f[13] = 0x00;
      const ip = 14;
      f.set([0x45, 0, 0, 39, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], ip);
      const udp = ip + 20;
      f.set([0x30, 0x39, 0x00, 0x35, 0, 19, 0, 0], udp);
      f.set(new TextEncoder().encode('hello world'), udp + 8);
      // Reference: the full checksum over pseudo-header + UDP header + payload.
      const pseudo = new Uint8Array(12 + 19);
      pseudo.set([10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 19], 0);
      pseudo.set(f.subarray(udp, udp + 19), 12);
      const expected = internetChecksum(pseudo);
      // Partial: the (uncomplemented) pseudo-header sum.
      const partial = onesComplementSum(pseudo.subarray(0, 12));
      f[udp + 6] = partial >> 8;
      f[udp + 7] = partial & 0xff;
      const hdr = { ...plainNetHdr(), flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: udp, csumOffset: 6 };
      return { bytes: f, hdr, expected };
    }

    it('passes a NEEDS_CSUM header through to a guest that accepted GUEST_CSUM', () => {
      const lan = new L2Switch({ offloads: csumOffloads });
      const [a, b] = [lan.connect('a'), lan.connect('b')];
      b.setGuestOffloads(csumOffloads);
      const rb = attach(b);
      const { bytes, hdr } = udpWithPartialChecksum();
      a.port(0).send([bytes], hdr);
      expect(rb.hdrs[0]).toEqual(hdr);
      expect(rb.frames[0]).toEqual(bytes);
    });

    it('completes the checksum in software for a guest without GUEST_CSUM', () => {
      const lan = new L2Switch({ offloads: csumOffloads });
      const [a, b] = [lan.connect('a'), lan.connect('b')];
      const rb = attach(b);
      const { bytes, hdr, expected } = udpWithPartialChecksum();
      a.port(0).send([bytes], hdr);
      expect(rb.hdrs[0]).toBeUndefined();
      const got = (rb.frames[0]![14 + 20 + 6]! << 8) | rb.frames[0]![14 + 20 + 7]!;
      expect(got).toBe(expected);
      expect(bytes[14 + 20 + 6]).not.toBe(rb.frames[0]![14 + 20 + 6]); // the sender's bytes are untouched
    });

    it('drops a GSO super-frame for a guest without the matching offload, counting it', () => {
      const lan = new L2Switch({ offloads: csumOffloads });
      const [a, b, c] = [lan.connect('a'), lan.connect('b'), lan.connect('c')];
      b.setGuestOffloads(csumOffloads);
      const [rb, rc] = [attach(b), attach(c)];
      const big = frame(BROADCAST, mac(1), 30000);
      const hdr = { ...plainNetHdr(), flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 };
      a.port(0).send([big], hdr);
      expect(rb.frames.length).toBe(1);
      expect(rb.hdrs[0]?.gsoType).toBe(VIRTIO_NET_HDR_GSO_TCPV4);
      expect(rc.frames.length).toBe(0);
      expect(lan.stats.offloadDrops).toBe(1);
      expect(c.stats.rxDropped).toBe(1);
    });

    it('without offloads, a GSO frame over the MTU is refused at the ingress port', () => {
      const lan = new L2Switch();
      const [a, b] = [lan.connect('a'), lan.connect('b')];
      const rb = attach(b);
      a.port(0).send([frame(BROADCAST, mac(1), 30000)], { ...plainNetHdr(), gsoType: VIRTIO_NET_HDR_GSO_TCPV4 });
      expect(rb.frames.length).toBe(0);
      expect(a.stats.txDropped).toBe(1);
      // A header that asks for nothing is not passed on.
      a.port(0).send([frame(BROADCAST, mac(1))], { ...plainNetHdr(), gsoType: VIRTIO_NET_HDR_GSO_NONE });
      expect(rb.hdrs).toEqual([undefined]);
    });
  });

  describe('properties', () => {
    // A reference model of 802.1D learning written independently: an array of [mac, port, seen].
    type Cmd =
      | { kind: 'send'; port: number; src: number; dst: number }
      | { kind: 'tick'; ms: number }
      | { kind: 'connect' }
      | { kind: 'disconnect'; port: number };
    const macPool = [1, 2, 3, 4, 5, 6, -1 /* broadcast */, -2 /* multicast */];
    const cmd: fc.Arbitrary<Cmd> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ kind: fc.constant('send' as const), port: fc.nat(7), src: fc.constantFrom(...macPool), dst: fc.constantFrom(...macPool) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.oneof(fc.integer({ min: 0, max: 700 }), fc.constantFrom(1, 999, 1000, 1001)) }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'connect' as const }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('disconnect' as const), port: fc.nat(7) }) },
    );
    const addr = (n: number): number[] => (n === -1 ? BROADCAST : n === -2 ? [0x33, 0x33, 0, 0, 0, 1] : mac(n));

    it('delivers every frame exactly where the reference learning/ageing/flooding model says, never to its source', () => {
      fc.assert(
        fc.property(fc.array(cmd, { maxLength: 80 }), fc.integer({ min: 1, max: 8 }), (cmds, maxAddresses) => {
          let now = 0;
          const ageing = 1000;
          const lan = new L2Switch({ ageingMs: ageing, maxAddresses, clock: { now: () => now } });
          interface P { backend: NetBackend; got: number[]; id: number }
          const live: P[] = [];
          let nextId = 0;
          const plug = (): void => {
            const backend = lan.connect();
            const p: P = { backend, got: [], id: nextId++ };
            backend.port(0).attach({ receive: (f) => (p.got.push(f[14]! | (f[15]! << 8)), true), writable() {} });
            live.push(p);
          };
          plug();
          plug();
          let fdb: { mac: number; port: number; seen: number }[] = [];
          let seq = 0;
          for (const c of cmds) {
            if (c.kind === 'tick') now += c.ms;
            else if (c.kind === 'connect') plug();
            else if (c.kind === 'disconnect') {
              if (live.length === 0) continue;
              const p = live.splice(c.port % live.length, 1)[0]!;
              void p.backend.close();
              fdb = fdb.filter((e) => e.port !== p.id);
            } else {
              if (live.length === 0) continue;
              const from = live[c.port % live.length]!;
              const tag = ++seq;
              // model: learn the unicast source (refresh, or evict aged then oldest when full)
              if (c.src > 0) {
                const e = fdb.find((x) => x.mac === c.src);
                if (e) {
                  e.port = from.id;
                  e.seen = now;
                } else {
                  if (fdb.length >= maxAddresses) fdb = fdb.filter((x) => now - x.seen <= ageing);
                  if (fdb.length >= maxAddresses) fdb.shift();
                  fdb.push({ mac: c.src, port: from.id, seen: now });
                }
              }
              let expected: number[];
              const hit = c.dst > 0 ? fdb.find((x) => x.mac === c.dst && now - x.seen <= ageing) : undefined;
              if (c.dst > 0 && !hit) fdb = fdb.filter((x) => x.mac !== c.dst);
              if (hit) expected = hit.port === from.id ? [] : [hit.port];
              else expected = live.filter((p) => p !== from).map((p) => p.id);
              const before = live.map((p) => p.got.length);
              from.backend.port(0).send([frame(addr(c.dst), addr(c.src), 46, tag)]);
              const receivedBy = live.filter((p, i) => p.got.length > before[i]!).map((p) => p.id);
              expect(receivedBy.sort()).toEqual(expected.sort());
              expect(receivedBy).not.toContain(from.id);
              for (const p of live) if (p.got.length > 0) expect(p.got.filter((t) => t === tag).length).toBeLessThanOrEqual(1);
            }
          }
        }),
        { numRuns: 200 },
      );
    });

    it('a port never holds more than maxQueuedFrames; delivered + queued + dropped = offered, in order', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 8 }), fc.array(fc.oneof(fc.constant('send'), fc.constant('block'), fc.constant('resume')), { maxLength: 60 }), (limit, ops) => {
          const lan = new L2Switch({ maxQueuedFrames: limit });
          const [a, b] = [lan.connect('a'), lan.connect('b')];
          const rb = attach(b);
          let offered = 0;
          for (const op of ops) {
            if (op === 'send') {
              a.port(0).send([frame(BROADCAST, mac(1), 46, offered)]);
              offered++;
            } else if (op === 'block') rb.accept = false;
            else {
              rb.accept = true;
              b.port(0).resumeReceive();
            }
            const queued = (b as unknown as { queuedFrames: number }).queuedFrames;
            expect(queued).toBeLessThanOrEqual(Math.max(limit, 0));
            expect(rb.frames.length + queued + b.stats.rxDropped).toBe(offered);
            const tags = rb.frames.map((f) => f[14]!);
            expect(tags).toEqual([...tags].sort((x, y) => x - y));
          }
        }),
        { numRuns: 200 },
      );
    });
  });
});
