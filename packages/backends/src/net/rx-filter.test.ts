import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatMac, isBroadcast, isGroupAddress, parseMac } from '@virtio-ts/device';
import { MAC_TABLE_ENTRIES, RxFilter } from './rx-filter.js';

const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
const frameTo = (dst: Uint8Array) => {
  const f = new Uint8Array(60);
  f.set(dst);
  return f;
};

describe('MAC addresses', () => {
  it('property: formatMac and parseMac round-trip', () => {
    fc.assert(
      fc.property(mac, (m) => {
        expect(parseMac(formatMac(m))).toEqual(m);
        expect(parseMac(formatMac(m).toUpperCase().replaceAll(':', '-'))).toEqual(m);
      }),
    );
  });

  it('refuses malformed strings and byte arrays of the wrong length', () => {
    for (const bad of ['', '52:54:00:12:34', '52:54:00:12:34:56:78', '52:54:00:12:34:5g', '525400123456', ' 52:54:00:12:34:56']) expect(() => parseMac(bad), bad).toThrow(RangeError);
    expect(() => parseMac(new Uint8Array(5))).toThrow(RangeError);
  });

  it('classifies group and broadcast addresses by the I/G bit', () => {
    expect(isGroupAddress(parseMac('01:00:5e:00:00:01'))).toBe(true);
    expect(isGroupAddress(parseMac('52:54:00:00:00:01'))).toBe(false);
    expect(isBroadcast(parseMac('ff:ff:ff:ff:ff:ff'))).toBe(true);
    expect(isBroadcast(parseMac('ff:ff:ff:ff:ff:fe'))).toBe(false);
  });
});

describe('receive filter (§5.1.6.5.1, §5.1.6.5.2)', () => {
  const own = parseMac('52:54:00:12:34:56');

  it('property: the filter matches a reference model of the modes and tables', () => {
    fc.assert(
      fc.property(
        fc.record({ promisc: fc.boolean(), allmulti: fc.boolean(), alluni: fc.boolean(), nomulti: fc.boolean(), nouni: fc.boolean(), nobcast: fc.boolean() }),
        fc.array(mac, { maxLength: 70 }),
        fc.array(mac, { maxLength: 70 }),
        fc.oneof(mac, fc.constant(own), fc.constant(new Uint8Array(6).fill(0xff))),
        (modes, unicast, multicast, dst) => {
          const filter = new RxFilter(own);
          Object.assign(filter.modes, modes);
          const pack = (list: Uint8Array[]) => Uint8Array.from(list.flatMap((m) => [...m]));
          filter.setTables(pack(unicast), unicast.length, pack(multicast), multicast.length);
          const has = (list: Uint8Array[]) => list.some((m) => m.every((b, i) => b === dst[i]));
          let expected: boolean;
          if (modes.promisc) expected = true;
          else if ((dst[0]! & 1) === 1) {
            if (dst.every((b) => b === 0xff)) expected = !modes.nobcast;
            else if (modes.nomulti) expected = false;
            else expected = modes.allmulti || multicast.length > MAC_TABLE_ENTRIES || has(multicast);
          } else if (modes.nouni) expected = false;
          else expected = modes.alluni || unicast.length > MAC_TABLE_ENTRIES || dst.every((b, i) => b === own[i]) || has(unicast);
          expect(filter.accepts(frameTo(dst))).toBe(expected);
          // save/restore keeps the decision.
          const copy = new RxFilter(own);
          copy.restore(filter.save());
          expect(copy.accepts(frameTo(dst))).toBe(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
