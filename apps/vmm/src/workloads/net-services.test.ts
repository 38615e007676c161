import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BENCH_END, BENCH_END_REPLY, BENCH_START, BENCH_START_ACK, decodeBenchControl, encodeBenchControl } from './net-services.js';

describe('net-bench control datagrams', () => {
  it('round-trip START, END, their replies (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(BENCH_START, BENCH_END, BENCH_START_ACK, BENCH_END_REPLY),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.nat({ max: 2 ** 40 }),
        fc.nat({ max: 2 ** 50 }),
        (op, nonce, packets, bytes) => {
          const control = op === BENCH_END_REPLY ? { op, nonce, packets, bytes } : { op, nonce };
          expect(decodeBenchControl(encodeBenchControl(control))).toEqual(control);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reads anything else as data, never throws (the network is untrusted; property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const control = decodeBenchControl(bytes);
        if (control !== undefined) expect([BENCH_START, BENCH_END, BENCH_START_ACK, BENCH_END_REPLY]).toContain(control.op);
      }),
      { numRuns: 300 },
    );
    expect(decodeBenchControl(new Uint8Array(1500))).toBeUndefined(); // a zero-filled data datagram
    const reply = encodeBenchControl({ op: BENCH_END_REPLY, nonce: 1, packets: 2, bytes: 3 });
    expect(decodeBenchControl(reply.subarray(0, 20))).toBeUndefined(); // truncated reply
    new DataView(reply.buffer).setFloat64(9, -1);
    expect(decodeBenchControl(reply)).toBeUndefined(); // a negative count
  });
});
