import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArpCache } from './arp-cache.js';

type Op =
  | { kind: 'learn'; ip: number; mac: number; create: boolean }
  | { kind: 'advance'; ms: number }
  | { kind: 'enqueue'; ip: number }
  | { kind: 'fail'; ip: number }
  | { kind: 'lookup'; ip: number };

const ip = fc.integer({ min: 1, max: 6 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('learn' as const), ip, mac: fc.integer({ min: 0, max: 255 }), create: fc.boolean() }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 600 }) }),
  fc.record({ kind: fc.constant('enqueue' as const), ip }),
  fc.record({ kind: fc.constant('fail' as const), ip }),
  fc.record({ kind: fc.constant('lookup' as const), ip }),
);

describe('ArpCache against a model (RFC 826 merge, RFC 1122 §2.3.2.1 expiry, §2.3.2.2 queueing)', () => {
  it('lookups, deliveries and failures match a plain model for any operation sequence (property)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let now = 0;
        const ttlMs = 1000;
        const maxPending = 3;
        const cache = new ArpCache({ now: () => now, ttlMs, maxEntries: 4, maxPending });
        // Model: resolved entries with expiry (eviction order = insertion/refresh order), pending lists.
        const resolved = new Map<number, { mac: number; expiresAt: number }>();
        const pending = new Map<number, number[]>();
        const delivered: string[] = [];
        const modelDelivered: string[] = [];
        let serial = 0;
        for (const o of ops) {
          if (o.kind === 'advance') now += o.ms;
          else if (o.kind === 'lookup') {
            const entry = resolved.get(o.ip);
            const live = entry !== undefined && now < entry.expiresAt;
            if (!live) resolved.delete(o.ip);
            expect(cache.lookup(o.ip)?.[0]).toBe(live ? entry.mac : undefined);
          } else if (o.kind === 'learn') {
            const waiting = pending.get(o.ip);
            const known = resolved.has(o.ip);
            const updated = cache.learn(o.ip, new Uint8Array([o.mac, 0, 0, 0, 0, 0]), o.create);
            const modelUpdated = o.create || waiting !== undefined || known;
            expect(updated).toBe(modelUpdated);
            if (modelUpdated) {
              resolved.delete(o.ip);
              resolved.set(o.ip, { mac: o.mac, expiresAt: now + ttlMs });
              while (resolved.size > 4) resolved.delete(resolved.keys().next().value!);
              for (const id of waiting ?? []) modelDelivered.push(`${id}->${o.mac}`);
              pending.delete(o.ip);
            }
          } else if (o.kind === 'enqueue') {
            const id = serial++;
            const starts = cache.enqueue(
              o.ip,
              { deliver: (mac) => delivered.push(`${id}->${mac[0]}`), fail: () => delivered.push(`${id} failed`) },
              () => new Error('overflow'),
            );
            const list = pending.get(o.ip);
            expect(starts).toBe(list === undefined);
            if (list === undefined) pending.set(o.ip, [id]);
            else {
              list.push(id);
              if (list.length > maxPending) modelDelivered.push(`${list.shift()} failed`);
            }
          } else {
            cache.fail(o.ip, new Error('timeout'));
            for (const id of pending.get(o.ip) ?? []) modelDelivered.push(`${id} failed`);
            pending.delete(o.ip);
          }
          expect(delivered).toEqual(modelDelivered);
          for (const key of [1, 2, 3, 4, 5, 6]) expect(cache.isResolving(key)).toBe(pending.has(key));
        }
      }),
      { numRuns: 300 },
    );
  });
});
