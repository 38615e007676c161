import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DriverError } from '../../errors.js';
import { BROADCAST_MAC } from './addresses.js';
import { ARP_OP_REQUEST, decodeArp, encodeArp } from './arp.js';
import { decodeEthernet, encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './ethernet.js';
import { createMemoryLinkPair } from './frame-link.js';
import { encodeIcmpEcho, ICMP_ECHO_REQUEST } from './icmp.js';
import { IpInterface } from './ip-interface.js';
import { encodeIpv4, IP_PROTOCOL_ICMP, IP_PROTOCOL_UDP, IPV4_FLAG_MF } from './ipv4.js';
import { encodeUdp } from './udp.js';

const tick = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

function pair(options: { mtu?: number } = {}) {
  const [a, b] = createMemoryLinkPair(options);
  const left = new IpInterface({ link: a, address: '10.0.0.1', prefixLength: 24, arpTimeoutMs: 20, arpAttempts: 2 });
  const right = new IpInterface({ link: b, address: '10.0.0.2', prefixLength: 24, arpTimeoutMs: 20, arpAttempts: 2 });
  return { a, b, left, right };
}

describe('IpInterface over an in-memory link', () => {
  it('RFC 1122 §3.2.2.6: "Every host MUST implement an ICMP Echo server function" — ping gets replies with RTTs', async () => {
    const { left, right } = pair();
    const result = await left.ping('10.0.0.2', { count: 3, size: 100 });
    expect(result.transmitted).toBe(3);
    expect(result.received).toBe(3);
    expect(result.rttMs.every((r) => r !== null && r >= 0)).toBe(true);
    expect(right.stats.echoRepliesSent).toBe(3);
    // One ARP exchange, then the cache answers (RFC 826 merge on both sides).
    expect(left.stats.arpRequestsSent).toBe(1);
    expect(right.stats.arpRequestsSent).toBe(0);
    expect(right.arp.has(left.address)).toBe(true);
  });

  it('ping with odd sizes, 0 and the largest unfragmented size (MTU − 28)', async () => {
    const { left } = pair({ mtu: 1500 });
    for (const size of [0, 1, 57, 1472]) expect((await left.ping('10.0.0.2', { size })).received).toBe(1);
    await expect(left.ping('10.0.0.2', { size: 1473 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a peer that does not answer: each request times out (null RTT) and ARP gives up as UNREACHABLE', async () => {
    const { left } = pair();
    const result = await left.ping('10.0.0.9', { count: 2, timeoutMs: 30 });
    expect(result).toEqual({ transmitted: 2, received: 0, rttMs: [null, null] });
    await expect(left.bindUdp(5000).sendTo('10.0.0.9', 9, new Uint8Array(1))).rejects.toMatchObject({ code: 'UNREACHABLE' });
    expect(left.stats.arpRequestsSent).toBeGreaterThanOrEqual(4); // 2 attempts per resolution
  });

  it('off-link destinations without a gateway are UNREACHABLE; with a gateway they go to its MAC', async () => {
    const { a, b, left } = pair();
    await expect(left.sendIpv4(0x08080808, IP_PROTOCOL_UDP, new Uint8Array(8))).rejects.toMatchObject({ code: 'UNREACHABLE' });
    const routed = new IpInterface({ link: a, address: '10.0.0.5', gateway: '10.0.0.2', arpTimeoutMs: 20 });
    const seen: number[] = [];
    b.onFrame((frame) => {
      const e = decodeEthernet(frame);
      if (e.etherType === ETHERTYPE_IPV4) seen.push(new DataView(e.payload.buffer, e.payload.byteOffset).getUint32(16));
    });
    await routed.sendIpv4(0x08080808, IP_PROTOCOL_UDP, encodeUdp({ sourcePort: 1, destinationPort: 2, data: new Uint8Array(0) }, routed.address, 0x08080808));
    await tick();
    expect(seen).toEqual([0x08080808]);
    routed.close();
  });

  it('UDP: bind, sendTo, receive through a callback and an async iterator; an echo server answers', async () => {
    const { left, right } = pair();
    const server = right.bindUdp(7);
    server.onMessage(({ data, address, port }) => void server.sendTo(address, port, data));
    const client = left.bindUdp(40000);
    await client.sendTo('10.0.0.2', 7, new TextEncoder().encode('hello'));
    const iterator = client[Symbol.asyncIterator]();
    const { value } = await iterator.next();
    expect(new TextDecoder().decode(value!.data)).toBe('hello');
    expect(value).toMatchObject({ address: '10.0.0.2', port: 7 });
    expect(() => right.bindUdp(7)).toThrow(/already bound/);
    client.close();
    expect((await iterator.next()).done).toBe(true);
    expect(() => left.bindUdp(0)).toThrow(DriverError);
  });

  it('RFC 1122 §2.3.2.2: packets sent while the address resolves wait in the queue and all go out once it does', async () => {
    const { left, right } = pair();
    const server = right.bindUdp(9);
    const got: number[] = [];
    server.onMessage(({ data }) => got.push(data[0]!));
    const client = left.bindUdp(1000);
    await Promise.all([0, 1, 2, 3, 4].map((i) => client.sendTo('10.0.0.2', 9, new Uint8Array([i]))));
    await tick();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(left.stats.arpRequestsSent).toBe(1);
  });

  it('RFC 1122 §2.3.2.1: cache entries expire, then the address is resolved again', async () => {
    let now = 0;
    const [a, b] = createMemoryLinkPair();
    const left = new IpInterface({ link: a, address: '10.0.0.1', arpCacheTtlMs: 1000, now: () => now });
    new IpInterface({ link: b, address: '10.0.0.2' });
    expect((await left.ping('10.0.0.2')).received).toBe(1);
    expect(left.arp.has(0x0a000002)).toBe(true);
    now = 999;
    expect(left.arp.has(0x0a000002)).toBe(true);
    now = 1000;
    expect(left.arp.has(0x0a000002)).toBe(false);
    expect((await left.ping('10.0.0.2')).received).toBe(1);
    expect(left.stats.arpRequestsSent).toBe(2);
  });

  it('RFC 826: answers a request for our IP and learns the requester; ignores requests for other addresses', async () => {
    const [a, b] = createMemoryLinkPair();
    const host = new IpInterface({ link: b, address: '10.0.0.2' });
    const replies: ReturnType<typeof decodeArp>[] = [];
    a.onFrame((frame) => {
      const e = decodeEthernet(frame);
      if (e.etherType === ETHERTYPE_ARP) replies.push(decodeArp(e.payload));
    });
    const ask = (targetIp: number) =>
      a.send(encodeEthernet({ destination: BROADCAST_MAC, source: a.mac, etherType: ETHERTYPE_ARP, payload: encodeArp({ operation: ARP_OP_REQUEST, senderMac: a.mac, senderIp: 0x0a000001, targetMac: new Uint8Array(6), targetIp }) }));
    ask(0x0a000003);
    await tick();
    expect(replies).toEqual([]);
    expect(host.arp.has(0x0a000001)).toBe(false); // not for us: no new entry (RFC 826 merge only)
    ask(0x0a000002);
    await tick();
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ operation: 2, senderIp: 0x0a000002, senderMac: b.mac, targetIp: 0x0a000001, targetMac: a.mac });
    expect(host.arp.has(0x0a000001)).toBe(true);
  });

  it('drops fragments, datagrams for other hosts, broadcast sources, bad checksums and broadcast echo requests, counting each', async () => {
    const [a, b] = createMemoryLinkPair();
    const host = new IpInterface({ link: b, address: '10.0.0.2' });
    const ipFrame = (fields: Partial<Parameters<typeof encodeIpv4>[0]>) =>
      encodeEthernet({
        destination: b.mac,
        source: a.mac,
        etherType: ETHERTYPE_IPV4,
        payload: encodeIpv4({ identification: 1, ttl: 64, protocol: IP_PROTOCOL_ICMP, source: 0x0a000001, destination: 0x0a000002, payload: encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, code: 0, identifier: 1, sequence: 1, data: new Uint8Array(4) }), ...fields }),
      });
    a.send(ipFrame({ flagsFragment: IPV4_FLAG_MF }));
    a.send(ipFrame({ flagsFragment: 0x0010 }));
    a.send(ipFrame({ destination: 0x0a000003 }));
    a.send(ipFrame({ source: 0xffffffff }));
    a.send(ipFrame({ destination: 0x0a0000ff }));
    a.send(ipFrame({ protocol: 6 }));
    const corrupt = ipFrame({});
    corrupt[14 + 20 + 8]! ^= 0xff; // ICMP data: the ICMP checksum fails
    a.send(corrupt);
    a.send(ipFrame({ ttl: 1 })); // RFC 1122 §3.2.1.7: "MUST NOT discard a datagram just because it was received with TTL less than 2"
    await tick();
    expect(host.stats.dropped).toMatchObject({ fragment: 2, notForUs: 1, badSource: 1, broadcastEcho: 1, unknownProtocol: 1, malformed: 1 });
    expect(host.stats.echoRepliesSent).toBe(1);
  });

  it('UDP to a port nobody bound is dropped and counted', async () => {
    const { left, right } = pair();
    await left.bindUdp(1).sendTo('10.0.0.2', 4242, new Uint8Array(3));
    await tick();
    expect(right.stats.dropped.noSocket).toBe(1);
  });

  it('hostile frames never throw out of the receive path and the host still answers afterwards (property)', async () => {
    const { a, left, right } = pair();
    const etherType = fc.constantFrom(ETHERTYPE_IPV4, ETHERTYPE_ARP, 0x86dd, 0x0100);
    const hostile = fc.tuple(etherType, fc.uint8Array({ maxLength: 120 }), fc.boolean()).map(([type, payload, broadcast]) => {
      const frame = new Uint8Array(14 + payload.length);
      frame.set(broadcast ? BROADCAST_MAC : right.mac, 0);
      frame.set(a.mac, 6);
      frame[12] = type >>> 8;
      frame[13] = type & 0xff;
      frame.set(payload, 14);
      return frame;
    });
    fc.assert(
      fc.property(fc.oneof(hostile, fc.uint8Array({ maxLength: 40 })), (frame) => {
        expect(() => right.receive(frame)).not.toThrow();
      }),
      { numRuns: 300 },
    );
    expect((await left.ping('10.0.0.2')).received).toBe(1);
  });

  it('a link that throws on send (a reset NIC) drops the frame and counts it; nothing throws out of the stack', async () => {
    const [a, b] = createMemoryLinkPair();
    const broken = { mac: a.mac, mtu: a.mtu, onFrame: a.onFrame.bind(a), onWritable: a.onWritable.bind(a), send: (): boolean => { throw new DriverError('DEVICE_RESET', 'reset'); } };
    const left = new IpInterface({ link: broken, address: '10.0.0.1', arpTimeoutMs: 10, arpAttempts: 1 });
    new IpInterface({ link: b, address: '10.0.0.2' });
    const result = await left.ping('10.0.0.2', { timeoutMs: 30 });
    expect(result.received).toBe(0);
    expect(left.stats.dropped.transmitError).toBeGreaterThan(0);
  });

  it('a full link queues frames in the transmit backlog and sends them on the writable event', async () => {
    const [a, b] = createMemoryLinkPair({ capacity: 2 });
    const left = new IpInterface({ link: a, address: '10.0.0.1' });
    const right = new IpInterface({ link: b, address: '10.0.0.2' });
    const server = right.bindUdp(9);
    const got: number[] = [];
    server.onMessage(({ data }) => got.push(data[0]!));
    expect((await left.ping('10.0.0.2')).received).toBe(1); // resolve ARP first
    const client = left.bindUdp(1);
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.sendTo('10.0.0.2', 9, new Uint8Array([i]))));
    for (let i = 0; i < 10 && got.length < 20; i++) await tick();
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(a.stats.txFull).toBeGreaterThan(0);
  });
});
