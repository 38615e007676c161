import { describe, expect, it } from 'vitest';
// The README's switch example, verbatim apart from the import path, the frames and the assertions.
import { L2Switch } from '../index.js';

function ethernet(dst: number[], src: number[]): Uint8Array {
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f.set([0x88, 0xb5], 12);
  return f;
}

describe('README', () => {
  it('example: two model guests on a switch', () => {
    const A = [0x52, 0x54, 0, 0, 0, 0x0a];
    const B = [0x52, 0x54, 0, 0, 0, 0x0b];
    const broadcastFromA = ethernet([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], A);
    const unicastToA = ethernet(A, B);
    const toA: Uint8Array[] = [];

    const lan = new L2Switch({ name: 'lan0' });
    const a = lan.connect('vm-a'); // give each port to a virtio-net device
    const b = lan.connect('vm-b');
    a.port(0).attach({ receive: (frame) => (toA.push(frame.slice()), true), writable() {} });
    const got: Uint8Array[] = []; // here a receiver stands in for vm-b's device
    b.port(0).attach({ receive: (frame) => (got.push(frame.slice()), true), writable() {} });
    a.port(0).send([broadcastFromA]); // unknown destination: flooded to b, never back to a
    b.port(0).send([unicastToA]); // a's address was learned: forwarded to a only
    expect(got).toEqual([broadcastFromA]);
    expect(toA).toEqual([unicastToA]);
    expect(lan.addresses()).toEqual(new Map([['52:54:00:00:00:0a', 'vm-a'], ['52:54:00:00:00:0b', 'vm-b']]));
    expect(lan.stats).toMatchObject({ forwarded: 1, flooded: 1, learned: 2 });
  });
});
