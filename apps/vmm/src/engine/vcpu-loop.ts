import type { BootInfo } from './boot-info.js';
import type { GuestKernel } from '../guest/guest-kernel.js';
import type { InterruptController } from '../machine/interrupt-lines.js';
import { VmmError } from '../errors.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Longest a halted vCPU sleeps before it looks at the stop word again. */
const HALT_SLICE_MS = 20;

/**
 * The vCPU's run loop in a worker (KVM_RUN and HLT): guest code is promise-based, so the loop
 * lets it run until it waits for a device, then dispatches pending interrupt vectors, and
 * halts in `Atomics.wait` on the interrupt word when there is nothing to do. Returns when
 * `guest` settles; throws its error, or TIMEOUT/stop when the VMM asks every vCPU to stop.
 */
export async function runVcpuLoop(
  kernel: GuestKernel,
  apic: InterruptController,
  boot: BootInfo,
  guest: Promise<void>,
  shouldStop: () => boolean,
): Promise<void> {
  let settled = false;
  let failure: { error: unknown } | undefined;
  guest.then(
    () => (settled = true),
    (error: unknown) => {
      settled = true;
      failure = { error };
    },
  );
  while (!settled) {
    if (shouldStop()) throw new VmmError('VCPU_FAILED', `vCPU ${boot.vcpu} stopped by the VMM`, { vcpu: boot.vcpu });
    const vectors = apic.take();
    for (const vector of vectors) kernel.dispatch(vector);
    await nextTurn();
    if (settled) break;
    if (vectors.length === 0) apic.halt(HALT_SLICE_MS);
  }
  if (failure !== undefined) throw failure.error;
}
