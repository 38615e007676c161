import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DriverError } from '../../errors.js';
import { formatIpv4, formatMac, parseIpv4, parseMac } from './addresses.js';
import { ARP_OP_REPLY, ARP_OP_REQUEST, decodeArp, encodeArp } from './arp.js';
import { internetChecksum, onesComplementSum, pseudoHeaderSum } from './checksum.js';
import { decodeEthernet, encodeEthernet, ETHERNET_MIN_FRAME } from './ethernet.js';
import { decodeIcmpEcho, encodeIcmpEcho, ICMP_ECHO_REQUEST } from './icmp.js';
import { decodeIpv4, encodeIpv4, IPV4_FLAG_MF, isFragment } from './ipv4.js';
import { decodeUdp, encodeUdp } from './udp.js';

const RUNS = { numRuns: 200 };
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
const ip = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 0xffff });
const payload = (max = 2000) => fc.uint8Array({ maxLength: max });

/** Decoding hostile bytes either succeeds or throws a MALFORMED DriverError: nothing else. */
function onlyMalformed(decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    expect(DriverError.isInstance(error) && error.code === 'MALFORMED').toBe(true);
  }
}

/** Reference checksum straight from RFC 1071's definition, in BigInt, without folding tricks. */
function referenceChecksum(bytes: Uint8Array): number {
  let sum = 0n;
  for (let i = 0; i < bytes.length; i += 2) sum += BigInt((bytes[i]! << 8) | (bytes[i + 1] ?? 0));
  while (sum >> 16n !== 0n) sum = (sum & 0xffffn) + (sum >> 16n);
  return Number(~sum & 0xffffn);
}

describe('RFC 1071 Internet checksum', () => {
  it('RFC 1071 §3: the worked example 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2', () => {
    expect(onesComplementSum(new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0xddf2);
    expect(internetChecksum(new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
  });

  it('RFC 1071: equals the definition for any bytes, odd lengths padded with a zero byte (property)', () => {
    fc.assert(fc.property(payload(3000), (bytes) => void expect(internetChecksum(bytes)).toBe(referenceChecksum(bytes))), RUNS);
  });

  it('RFC 1071 §2 (A)/(B): data with its checksum appended at an even offset verifies to zero (property)', () => {
    fc.assert(
      fc.property(payload(1500), (bytes) => {
        const even = bytes.length % 2 === 0 ? bytes : Uint8Array.from([...bytes, 0]);
        const sum = internetChecksum(even);
        const whole = Uint8Array.from([...even, sum >>> 8, sum & 0xff]);
        expect(internetChecksum(whole)).toBe(0);
      }),
      RUNS,
    );
  });

  it('RFC 1071 §2 (C): summing in even-length parts with a carried partial sum equals summing at once (property)', () => {
    fc.assert(
      fc.property(payload(1000), fc.nat(), (bytes, cut) => {
        const at = Math.min(bytes.length, cut) & ~1;
        expect(internetChecksum(bytes.subarray(at), onesComplementSum(bytes.subarray(0, at)))).toBe(internetChecksum(bytes));
      }),
      RUNS,
    );
  });

  it('RFC 768: the pseudo-header sum equals the checksum sum of its 12 bytes (property)', () => {
    fc.assert(
      fc.property(ip, ip, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), (s, d, p, l) => {
        const bytes = new Uint8Array(12);
        const v = new DataView(bytes.buffer);
        v.setUint32(0, s);
        v.setUint32(4, d);
        v.setUint8(9, p);
        v.setUint16(10, l);
        expect(pseudoHeaderSum(s, d, p, l)).toBe(onesComplementSum(bytes));
      }),
      RUNS,
    );
  });
});

describe('addresses', () => {
  it('IPv4 and MAC text forms round-trip (property); garbage is INVALID_ARGUMENT', () => {
    fc.assert(fc.property(ip, (a) => void expect(parseIpv4(formatIpv4(a))).toBe(a)), RUNS);
    fc.assert(fc.property(mac, (m) => void expect(parseMac(formatMac(m))).toEqual(m)), RUNS);
    for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', 'a.b.c.d', '', '1.2.3.4.5']) expect(() => parseIpv4(bad)).toThrow(DriverError);
    for (const bad of ['00:11:22:33:44', 'zz:11:22:33:44:55', '']) expect(() => parseMac(bad)).toThrow(DriverError);
  });
});

describe('Ethernet II', () => {
  it('IEEE 802.3 §3.2: destination, source, EtherType, payload round-trip (property)', () => {
    fc.assert(
      fc.property(mac, mac, fc.integer({ min: 0x0600, max: 0xffff }), payload(), (destination, source, etherType, data) => {
        const frame = encodeEthernet({ destination, source, etherType, payload: data });
        expect(frame.length).toBe(Math.max(ETHERNET_MIN_FRAME, 14 + data.length));
        const back = decodeEthernet(frame);
        expect(back.destination).toEqual(destination);
        expect(back.source).toEqual(source);
        expect(back.etherType).toBe(etherType);
        expect(back.payload.subarray(0, data.length)).toEqual(data);
        expect(back.payload.subarray(data.length).every((b) => b === 0)).toBe(true); // §3.2.7 pad
      }),
      RUNS,
    );
  });

  it('a runt shorter than 14 bytes or an 802.3 length field is MALFORMED; any bytes decode or fail typed (property)', () => {
    expect(() => decodeEthernet(new Uint8Array(13))).toThrow(/MALFORMED/);
    expect(() => decodeEthernet(new Uint8Array(60))).toThrow(/MALFORMED/); // type 0 is a length
    fc.assert(fc.property(payload(100), (bytes) => onlyMalformed(() => decodeEthernet(bytes))), RUNS);
  });
});

describe('ARP (RFC 826)', () => {
  it('request and reply round-trip (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(ARP_OP_REQUEST, ARP_OP_REPLY), mac, ip, mac, ip, (operation, senderMac, senderIp, targetMac, targetIp) => {
        const packet = { operation, senderMac, senderIp, targetMac, targetIp };
        expect(decodeArp(encodeArp(packet))).toEqual(packet);
      }),
      RUNS,
    );
  });

  it('RFC 826: a hardware type or protocol type we do not speak is discarded (MALFORMED); truncations too (property)', () => {
    const good = encodeArp({ operation: 1, senderMac: new Uint8Array(6), senderIp: 1, targetMac: new Uint8Array(6), targetIp: 2 });
    const badHardware = good.slice();
    badHardware[1] = 6;
    expect(() => decodeArp(badHardware)).toThrow(/MALFORMED/);
    const badProtocol = good.slice();
    badProtocol[2] = 0x86;
    expect(() => decodeArp(badProtocol)).toThrow(/MALFORMED/);
    fc.assert(fc.property(fc.nat(27), (n) => void expect(() => decodeArp(good.subarray(0, n))).toThrow(/MALFORMED/)), RUNS);
    fc.assert(fc.property(payload(40), (bytes) => onlyMalformed(() => decodeArp(bytes))), RUNS);
  });
});

describe('IPv4 (RFC 791)', () => {
  const fields = fc.record({
    tos: fc.integer({ min: 0, max: 255 }),
    identification: fc.integer({ min: 0, max: 0xffff }),
    flagsFragment: fc.integer({ min: 0, max: 0xffff }),
    ttl: fc.integer({ min: 1, max: 255 }),
    protocol: fc.integer({ min: 0, max: 255 }),
    source: ip,
    destination: ip,
    payload: payload(),
  });

  it('header fields and payload round-trip, and the header checksum verifies (property)', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const bytes = encodeIpv4(f);
        expect(internetChecksum(bytes.subarray(0, 20))).toBe(0);
        const { options, ...back } = decodeIpv4(bytes);
        expect(options.length).toBe(0);
        expect(back).toEqual(f);
      }),
      RUNS,
    );
  });

  it('RFC 1122 §3.2.1.2: any single flipped header bit is caught by the checksum or the field checks (property)', () => {
    fc.assert(
      fc.property(fields, fc.nat(159), (f, bit) => {
        const bytes = encodeIpv4(f);
        bytes[bit >>> 3]! ^= 1 << (bit & 7);
        expect(() => decodeIpv4(bytes)).toThrow(/MALFORMED/);
      }),
      RUNS,
    );
  });

  it('RFC 1122 §3.2.1.1: version other than 4, IHL < 5, total length beyond the bytes are MALFORMED; trailing padding is trimmed', () => {
    const bytes = encodeIpv4({ identification: 1, ttl: 64, protocol: 17, source: 1, destination: 2, payload: new Uint8Array(4) });
    const v6 = bytes.slice();
    v6[0] = 0x65;
    expect(() => decodeIpv4(v6)).toThrow(/version 6/);
    const ihl4 = bytes.slice();
    ihl4[0] = 0x44;
    expect(() => decodeIpv4(ihl4)).toThrow(/IHL/);
    expect(() => decodeIpv4(bytes.subarray(0, 23))).toThrow(/total length/);
    const padded = new Uint8Array(46);
    padded.set(bytes);
    expect(decodeIpv4(padded).payload.length).toBe(4);
  });

  it('RFC 791 §3.2: MF or a fragment offset marks a fragment; DF alone does not', () => {
    expect(isFragment({ flagsFragment: 0x4000 })).toBe(false);
    expect(isFragment({ flagsFragment: IPV4_FLAG_MF })).toBe(true);
    expect(isFragment({ flagsFragment: 0x0001 })).toBe(true);
  });

  it('hostile bytes decode or fail with MALFORMED, never anything else (property)', () => {
    fc.assert(fc.property(payload(80), (bytes) => onlyMalformed(() => decodeIpv4(bytes))), RUNS);
    fc.assert(
      fc.property(fields, fc.nat(), (f, n) => {
        const bytes = encodeIpv4(f);
        onlyMalformed(() => decodeIpv4(bytes.subarray(0, n % (bytes.length + 1))));
      }),
      RUNS,
    );
  });
});

describe('ICMP echo (RFC 792)', () => {
  const echo = fc.record({
    type: fc.constantFrom(0, 8),
    code: fc.constant(0),
    identifier: fc.integer({ min: 0, max: 0xffff }),
    sequence: fc.integer({ min: 0, max: 0xffff }),
    data: payload(),
  });

  it('echo and echo reply round-trip with a checksum over the whole message, odd data lengths included (property)', () => {
    fc.assert(
      fc.property(echo, (m) => {
        const bytes = encodeIcmpEcho(m);
        expect(internetChecksum(bytes)).toBe(0);
        expect(decodeIcmpEcho(bytes)).toEqual(m);
      }),
      RUNS,
    );
  });

  it('RFC 1122 §3.2.2: a corrupted message fails its checksum (MALFORMED); truncations too (property)', () => {
    fc.assert(
      fc.property(echo, fc.nat(), (m, at) => {
        const bytes = encodeIcmpEcho({ ...m, type: ICMP_ECHO_REQUEST });
        const i = at % bytes.length;
        bytes[i] = bytes[i]! ^ 0x10;
        expect(() => decodeIcmpEcho(bytes)).toThrow(/MALFORMED/);
        onlyMalformed(() => decodeIcmpEcho(bytes.subarray(0, at % 8)));
      }),
      RUNS,
    );
  });
});

describe('UDP (RFC 768)', () => {
  it('ports and data round-trip; the checksum covers the pseudo-header (property)', () => {
    fc.assert(
      fc.property(port, port, payload(), ip, ip, (sourcePort, destinationPort, data, s, d) => {
        const bytes = encodeUdp({ sourcePort, destinationPort, data }, s, d);
        expect(decodeUdp(bytes, s, d)).toEqual({ sourcePort, destinationPort, data });
        expect((bytes[6]! << 8) | bytes[7]!).not.toBe(0); // RFC 768: computed zero is sent as ones
      }),
      RUNS,
    );
  });

  it('RFC 1122 §4.1.3.4: a datagram delivered to the wrong address fails its checksum (the pseudo-header) (property)', () => {
    fc.assert(
      fc.property(payload(200), ip, ip, ip, (data, s, d, other) => {
        fc.pre(other !== d);
        const bytes = encodeUdp({ sourcePort: 1, destinationPort: 2, data }, s, d);
        // One's complement arithmetic has two zeros: a different address can collide only when the sums are equal mod 0xffff.
        fc.pre(pseudoHeaderSum(s, d, 17, bytes.length) % 0xffff !== pseudoHeaderSum(s, other, 17, bytes.length) % 0xffff);
        expect(() => decodeUdp(bytes, s, other)).toThrow(/checksum/);
      }),
      RUNS,
    );
  });

  it('RFC 768: "An all zero transmitted checksum value means that the transmitter generated no checksum"', () => {
    const bytes = encodeUdp({ sourcePort: 1, destinationPort: 2, data: new Uint8Array([1, 2, 3]) }, 1, 2);
    bytes[6] = 0;
    bytes[7] = 0;
    bytes[8] = 9; // corrupt data: unverifiable, accepted as sent
    expect(decodeUdp(bytes, 1, 2).data).toEqual(new Uint8Array([9, 2, 3]));
  });

  it('RFC 768: a length field below 8 or beyond the bytes received is MALFORMED; hostile bytes fail typed (property)', () => {
    const bytes = encodeUdp({ sourcePort: 1, destinationPort: 2, data: new Uint8Array(10) }, 1, 2);
    const short = bytes.slice();
    short[5] = 7;
    expect(() => decodeUdp(short, 1, 2)).toThrow(/length 7/);
    expect(() => decodeUdp(bytes.subarray(0, 17), 1, 2)).toThrow(/length 18/);
    fc.assert(fc.property(payload(60), ip, ip, (b, s, d) => onlyMalformed(() => decodeUdp(b, s, d))), RUNS);
  });
});
