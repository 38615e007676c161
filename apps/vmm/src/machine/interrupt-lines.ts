/** Interrupt vectors per vCPU (8 words of pending bits). */
export const VECTORS_PER_VCPU = 256;
const PENDING_WORDS = VECTORS_PER_VCPU / 32;
/** Words per vCPU: a kick counter (what the vCPU sleeps on) and the pending bitmap. */
export const INTERRUPT_WORDS = 1 + PENDING_WORDS;
const KICK = 0;

/**
 * The VMM side of interrupt delivery (irqfd / MSI injection): sets the vector's pending bit in
 * the vCPU's bitmap and notifies the vCPU's interrupt word, waking it if it is halted.
 */
export function raiseInterrupt(words: Int32Array, vcpu: number, vector: number): void {
  const base = vcpu * INTERRUPT_WORDS;
  const v = vector & (VECTORS_PER_VCPU - 1);
  Atomics.or(words, base + 1 + (v >>> 5), 1 << (v & 31));
  Atomics.add(words, base + KICK, 1);
  Atomics.notify(words, base + KICK);
}

/**
 * The guest side: the vCPU's local APIC. `take()` returns and clears the pending vectors;
 * `halt()` sleeps (HLT) until an interrupt arrives or the timeout passes.
 */
export class InterruptController {
  private readonly base: number;
  private seenKick = 0;

  constructor(
    private readonly words: Int32Array,
    vcpu: number,
  ) {
    this.base = vcpu * INTERRUPT_WORDS;
  }

  /** Pending vectors, lowest first, each cleared as it is returned. */
  take(): number[] {
    this.seenKick = Atomics.load(this.words, this.base + KICK);
    const vectors: number[] = [];
    for (let w = 0; w < PENDING_WORDS; w++) {
      if (Atomics.load(this.words, this.base + 1 + w) === 0) continue;
      let bits = Atomics.exchange(this.words, this.base + 1 + w, 0);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        vectors.push(w * 32 + bit);
        bits &= bits - 1;
      }
    }
    return vectors;
  }

  /**
   * Sleeps until an interrupt newer than the last `take()` arrives, or `timeoutMs` passes.
   * Spins briefly first: waking a sleeping thread costs tens of µs on these VMs.
   */
  halt(timeoutMs: number): void {
    const index = this.base + KICK;
    for (let i = 0; i < 200; i++) if (Atomics.load(this.words, index) !== this.seenKick) return;
    Atomics.wait(this.words, index, this.seenKick, timeoutMs);
  }
}
