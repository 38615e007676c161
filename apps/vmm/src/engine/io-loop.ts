import type { GuestBus } from '../machine/bus.js';
import { drainDoorbells } from '../machine/doorbells.js';
import { serveMailbox } from '../machine/exit-mailbox.js';
import { CONTROL_ATTENTION, type SharedState } from './shared-state.js';

/** `Atomics.waitAsync` (ES2024; in Node since 16): typed here because the project targets ES2023's lib. */
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeout?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * The VMM's I/O thread (here the main thread): sleeps on the attention word with
 * `Atomics.waitAsync` — so block I/O promises keep running meanwhile — and on every wake
 * answers pending exits and drains the doorbells. `stop()` ends it.
 */
export class IoLoop {
  private readonly control: Int32Array;
  private readonly mailboxes: Int32Array;
  private readonly doorbells: Int32Array;
  private running = false;
  private stopped: Promise<void> | undefined;
  private wakeStop: (() => void) | undefined;
  /** Wake-ups of the loop (each may serve many exits and doorbells). */
  wakeups = 0;
  doorbellsServed = 0;

  constructor(
    shared: SharedState,
    private readonly vcpus: number,
    private readonly bus: GuestBus,
    private readonly doorbellSlots: number,
    private readonly onDoorbell: (slot: number) => void,
  ) {
    this.control = new Int32Array(shared.control);
    this.mailboxes = new Int32Array(shared.mailboxes);
    this.doorbells = new Int32Array(shared.doorbells);
  }

  /** One pass over every mailbox and doorbell; returns true when it found work. */
  poll(): boolean {
    let worked = false;
    for (let vcpu = 0; vcpu < this.vcpus; vcpu++) if (serveMailbox(this.mailboxes, vcpu, this.bus)) worked = true;
    const rung = drainDoorbells(this.doorbells, this.doorbellSlots, this.onDoorbell);
    this.doorbellsServed += rung;
    return worked || rung > 0;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopped = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    // Wake the waitAsync so the loop sees `running` is false.
    Atomics.add(this.control, CONTROL_ATTENTION, 1);
    Atomics.notify(this.control, CONTROL_ATTENTION);
    this.wakeStop?.();
    await this.stopped;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const seen = Atomics.load(this.control, CONTROL_ATTENTION);
      if (this.poll()) {
        // More work may have arrived while serving; give promise callbacks (I/O completions) a turn.
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      this.wakeups++;
      const wait = waitAsync(this.control, CONTROL_ATTENTION, seen, 1000);
      if (wait.async) {
        await Promise.race([wait.value, new Promise<void>((resolve) => (this.wakeStop = resolve))]);
      }
    }
  }
}
