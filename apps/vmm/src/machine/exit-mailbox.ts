import { VmmError } from '../errors.js';
import { read64, write64, type AccessSize, type GuestBus } from './bus.js';

// One mailbox per vCPU: 8 Int32 words in a SharedArrayBuffer.
const STATE = 0;
const KIND = 1;
const SIZE = 2;
const ADDRESS_LOW = 3;
const ADDRESS_HIGH = 4;
const VALUE = 5;
/** Words per mailbox. */
export const MAILBOX_WORDS = 8;

const IDLE = 0;
const REQUEST = 1;
const RESPONSE = 2;

const KIND_READ = 1;
const KIND_WRITE = 2;

/**
 * How long a vCPU spins on its mailbox before it sleeps in Atomics.wait. Waking a thread costs
 * 10–45 µs on these VMs (DEPENDENCIES.md): an exit the VMM answers at once should not pay it.
 */
const SPIN_ITERATIONS = 2000;

/** The VMM's attention word: vCPUs bump and notify it on an exit or a doorbell (epoll, in KVM terms). */
export class AttentionWord {
  readonly words: Int32Array;
  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, 1);
  }
  static create(): AttentionWord {
    return new AttentionWord(new SharedArrayBuffer(4));
  }
  /** Wakes the VMM's I/O thread. */
  ring(): void {
    Atomics.add(this.words, 0, 1);
    Atomics.notify(this.words, 0);
  }
  get value(): number {
    return Atomics.load(this.words, 0);
  }
}

/**
 * The guest side of a synchronous exit (KVM's MMIO exit): the vCPU writes the access into its
 * mailbox, wakes the VMM, and blocks in `Atomics.wait` until the VMM has answered. Only a
 * worker thread may block; the VMM answers from its I/O thread with {@link serveMailbox}.
 */
export class ExitingBus implements GuestBus {
  private readonly mailbox: Int32Array;
  /** How long to wait for the VMM before declaring it dead (ms). */
  private readonly timeoutMs: number;

  constructor(
    mailboxBuffer: SharedArrayBuffer,
    index: number,
    private readonly attention: AttentionWord,
    options: { timeoutMs?: number } = {},
  ) {
    this.mailbox = new Int32Array(mailboxBuffer, index * MAILBOX_WORDS * 4, MAILBOX_WORDS);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Exits taken. */
  exits = 0;

  read(address: number, size: AccessSize): number {
    if (size === 8) return read64((a, s) => this.exit(KIND_READ, a, s, 0), address);
    return this.exit(KIND_READ, address, size, 0);
  }

  write(address: number, size: AccessSize, value: number): void {
    if (size === 8) return write64((a, s, v) => this.exit(KIND_WRITE, a, s, v), address, value);
    this.exit(KIND_WRITE, address, size, value);
  }

  private exit(kind: number, address: number, size: 1 | 2 | 4, value: number): number {
    this.exits++;
    const m = this.mailbox;
    m[KIND] = kind;
    m[SIZE] = size;
    m[ADDRESS_LOW] = address % 2 ** 32 | 0;
    m[ADDRESS_HIGH] = Math.floor(address / 2 ** 32) | 0;
    m[VALUE] = value | 0;
    Atomics.store(m, STATE, REQUEST); // publishes the fields above (seq-cst store)
    this.attention.ring();
    for (let i = 0; i < SPIN_ITERATIONS; i++) {
      if (Atomics.load(m, STATE) === RESPONSE) return this.finish();
    }
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(m, STATE) !== RESPONSE) {
      const left = deadline - Date.now();
      if (left <= 0) throw new VmmError('TIMEOUT', `the VMM did not answer an exit within ${this.timeoutMs} ms`, { offset: address });
      Atomics.wait(m, STATE, REQUEST, left);
    }
    return this.finish();
  }

  private finish(): number {
    const result = this.mailbox[VALUE]! >>> 0;
    Atomics.store(this.mailbox, STATE, IDLE);
    return result;
  }
}

/**
 * The VMM side: answers a pending exit in mailbox `index` through `bus`, if there is one.
 * Returns true when it served an exit.
 */
export function serveMailbox(mailboxes: Int32Array, index: number, bus: GuestBus): boolean {
  const base = index * MAILBOX_WORDS;
  if (Atomics.load(mailboxes, base + STATE) !== REQUEST) return false;
  const size = mailboxes[base + SIZE]! as 1 | 2 | 4;
  const address = (mailboxes[base + ADDRESS_LOW]! >>> 0) + (mailboxes[base + ADDRESS_HIGH]! >>> 0) * 2 ** 32;
  if (size !== 1 && size !== 2 && size !== 4) {
    mailboxes[base + VALUE] = -1;
  } else if (mailboxes[base + KIND] === KIND_READ) {
    mailboxes[base + VALUE] = bus.read(address, size) | 0;
  } else {
    bus.write(address, size, mailboxes[base + VALUE]! >>> 0);
  }
  Atomics.store(mailboxes, base + STATE, RESPONSE);
  Atomics.notify(mailboxes, base + STATE);
  return true;
}
