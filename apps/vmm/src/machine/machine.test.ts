import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MmioBus, type AccessSize, type GuestBus } from './bus.js';
import { DoorbellBus, DoorbellTable, drainDoorbells, MAX_DOORBELLS, type DoorbellRegistration } from './doorbells.js';
import { AttentionWord, MAILBOX_WORDS, serveMailbox } from './exit-mailbox.js';
import { INTERRUPT_WORDS, InterruptController, raiseInterrupt } from './interrupt-lines.js';
import { decodeMsi, msiAddress } from './msi.js';

/** A bus that records every access and answers reads with the address. */
class RecordingBus implements GuestBus {
  readonly log: string[] = [];
  read(address: number, size: AccessSize): number {
    this.log.push(`r${size}@${address.toString(16)}`);
    return address & 0xffff;
  }
  write(address: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${address.toString(16)}=${value}`);
  }
}

describe('MmioBus', () => {
  it('routes accesses to the window that claims them, relative to its base', () => {
    const bus = new MmioBus();
    const seen: string[] = [];
    bus.map(0x1000, 0x100, 'a', { read: (o, s) => (seen.push(`a r${s}+${o}`), 7), write: (o, s, v) => void seen.push(`a w${s}+${o}=${v}`) });
    bus.map(0x2000, 0x100, 'b', { read: () => 9, write: () => {} });
    expect(bus.read(0x1010, 4)).toBe(7);
    bus.write(0x10fe, 2, 5);
    expect(bus.read(0x2000, 1)).toBe(9);
    expect(seen).toEqual(['a r4+16', 'a w2+254=5']);
  });
  it('reads all ones from an unclaimed address and counts it (a hole, a straddling access)', () => {
    const bus = new MmioBus();
    bus.map(0x1000, 0x100, 'a', { read: () => 0, write: () => {} });
    expect(bus.read(0x5000, 4)).toBe(0xffff_ffff);
    expect(bus.read(0x10ff, 2)).toBe(0xffff);
    bus.write(0x5000, 1, 1);
    expect(bus.unclaimedAccesses).toBe(3);
  });
  it('turns a handler that throws into all ones and a recorded fault, never an exception', () => {
    const faults: string[] = [];
    const bus = new MmioBus((name) => faults.push(name));
    bus.map(0, 0x10, 'bad', {
      read: () => {
        throw new Error('boom');
      },
      write: () => {
        throw new Error('boom');
      },
    });
    expect(bus.read(0, 4)).toBe(0xffff_ffff);
    expect(() => bus.write(0, 4, 1)).not.toThrow();
    expect(faults).toEqual(['bad', 'bad']);
  });
  it('splits an 8-byte access into two 4-byte ones, low half first (§4.1.3)', () => {
    const bus = new MmioBus();
    const seen: string[] = [];
    bus.map(0, 0x10, 'a', { read: (o) => (o === 0 ? 0x1234 : 0x5), write: (o, s, v) => void seen.push(`${o}:${s}:${v}`) });
    expect(bus.read(0, 8)).toBe(0x5_0000_1234);
    bus.write(0, 8, 0x7_0000_0009);
    expect(seen).toEqual(['0:4:9', '4:4:7']);
  });
  it('refuses overlapping windows', () => {
    const bus = new MmioBus();
    bus.map(0x1000, 0x100, 'a', { read: () => 0, write: () => {} });
    expect(() => bus.map(0x10f0, 0x100, 'b', { read: () => 0, write: () => {} })).toThrow(/overlaps/);
  });
});

describe('doorbells (ioeventfd)', () => {
  it('round-trips any registration table (property)', () => {
    const registration = fc.record({
      address: fc.integer({ min: 0, max: 2 ** 48 }),
      size: fc.constantFrom<AccessSize>(1, 2, 4),
      slot: fc.integer({ min: 0, max: MAX_DOORBELLS - 1 }),
      datamatch: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(registration, { maxLength: 50 }), (list) => {
        const table = DoorbellTable.create();
        const before = table.generation;
        table.publish(list);
        expect(table.generation).toBe(before + 1);
        const expected = list.map((r) => (r.datamatch === undefined ? { address: r.address, size: r.size, slot: r.slot } : r));
        expect(table.read()).toEqual(expected);
      }),
      { numRuns: 100 },
    );
  });

  it('rings the doorbell for a registered write instead of exiting, and exits for everything else', () => {
    const inner = new RecordingBus();
    const table = DoorbellTable.create();
    const words = new Int32Array(new SharedArrayBuffer(16 * 4));
    const attention = AttentionWord.create();
    const bus = new DoorbellBus(inner, table, words, attention);
    const registrations: DoorbellRegistration[] = [
      { address: 0xc000_3000, size: 2, slot: 3 },
      { address: 0xd000_0050, size: 4, datamatch: 1, slot: 5 },
    ];
    table.publish(registrations);
    bus.write(0xc000_3000, 2, 0);
    bus.write(0xd000_0050, 4, 1);
    bus.write(0xd000_0050, 4, 2); // no datamatch: an exit
    bus.write(0xc000_3000, 4, 0); // wrong width: an exit
    expect(inner.log).toEqual(['w4@d0000050=2', 'w4@c0003000=0']);
    expect(bus.doorbells).toBe(2);
    expect(attention.value).toBe(2);
    const rung: number[] = [];
    drainDoorbells(words, 16, (slot) => rung.push(slot));
    expect(rung).toEqual([3, 5]);
    drainDoorbells(words, 16, (slot) => rung.push(slot));
    expect(rung).toEqual([3, 5]);
  });

  it('reloads the table when the VMM republishes it (a BAR moved)', () => {
    const inner = new RecordingBus();
    const table = DoorbellTable.create();
    const words = new Int32Array(new SharedArrayBuffer(16 * 4));
    const bus = new DoorbellBus(inner, table, words, AttentionWord.create());
    table.publish([{ address: 0x100, size: 2, slot: 0 }]);
    bus.write(0x100, 2, 0);
    table.publish([{ address: 0x200, size: 2, slot: 0 }]);
    bus.write(0x100, 2, 0);
    bus.write(0x200, 2, 0);
    expect(inner.log).toEqual(['w2@100=0']);
    expect(bus.doorbells).toBe(2);
  });
});

describe('exit mailbox (VMM side)', () => {
  it('answers a posted read and ignores an idle mailbox', () => {
    const mailboxes = new Int32Array(new SharedArrayBuffer(2 * MAILBOX_WORDS * 4));
    const bus = new RecordingBus();
    expect(serveMailbox(mailboxes, 1, bus)).toBe(false);
    // What ExitingBus writes for a 4-byte read of 0x1_2345_6789 from vCPU 1.
    const base = MAILBOX_WORDS;
    mailboxes.set([1, 1, 4, 0x2345_6789, 1, 0], base);
    expect(serveMailbox(mailboxes, 1, bus)).toBe(true);
    expect(bus.log).toEqual(['r4@123456789']);
    expect(mailboxes[base]).toBe(2); // RESPONSE
    expect(mailboxes[base + 5]).toBe(0x6789);
  });
  it('answers an access of an invalid width with all ones, without touching the bus', () => {
    const mailboxes = new Int32Array(new SharedArrayBuffer(MAILBOX_WORDS * 4));
    const bus = new RecordingBus();
    mailboxes.set([1, 1, 3, 0, 0, 0], 0);
    expect(serveMailbox(mailboxes, 0, bus)).toBe(true);
    expect(bus.log).toEqual([]);
    expect(mailboxes[5]).toBe(-1);
  });
});

describe('interrupt words (MSI injection)', () => {
  it('delivers each raised vector once, to the vCPU it targets', () => {
    const words = new Int32Array(new SharedArrayBuffer(2 * INTERRUPT_WORDS * 4));
    const cpu0 = new InterruptController(words, 0);
    const cpu1 = new InterruptController(words, 1);
    raiseInterrupt(words, 1, 65);
    raiseInterrupt(words, 1, 33);
    raiseInterrupt(words, 1, 65);
    raiseInterrupt(words, 0, 255);
    expect(cpu1.take()).toEqual([33, 65]);
    expect(cpu1.take()).toEqual([]);
    expect(cpu0.take()).toEqual([255]);
  });
  it('halt returns at once when an interrupt arrived after the last take (no lost wake-up)', () => {
    const words = new Int32Array(new SharedArrayBuffer(INTERRUPT_WORDS * 4));
    const cpu = new InterruptController(words, 0);
    cpu.take();
    raiseInterrupt(words, 0, 40);
    const t0 = performance.now();
    cpu.halt(5_000);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(cpu.take()).toEqual([40]);
  });
  it('encodes the destination vCPU in the MSI address and rejects other addresses', () => {
    expect(decodeMsi(msiAddress(3), 0x41)).toEqual({ vcpu: 3, vector: 0x41 });
    expect(decodeMsi(0xfed0_0000, 0x41)).toBeUndefined();
    expect(decodeMsi(2 ** 60, 0x41)).toBeUndefined();
  });
});
