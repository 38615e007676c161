// The vCPU worker thread: the guest side of the model guest. Loaded from dist (Node 20 cannot run
// TypeScript in a worker). It posts progress, results and a final message; it never throws out.
import { GuestMemory } from '@virtio-ts/memory';
import { parentPort, workerData } from 'node:worker_threads';
import { describeError, VmmError } from '../errors.js';
import { bringUpDevices } from '../guest/front-ends.js';
import { GuestKernel } from '../guest/guest-kernel.js';
import { probeTransports } from '../guest/attach-devices.js';
import { linger, runWorkloads } from '../guest/vcpu-main.js';
import { DoorbellBus, DoorbellTable } from '../machine/doorbells.js';
import { AttentionWord, ExitingBus } from '../machine/exit-mailbox.js';
import { InterruptController } from '../machine/interrupt-lines.js';
import type { BootInfo } from './boot-info.js';
import { CONTROL_RELEASE, CONTROL_STOP, type SharedState } from './shared-state.js';
import { runVcpuLoop } from './vcpu-loop.js';
import type { VcpuMessage } from './vcpu-messages.js';

interface VcpuWorkerData {
  readonly boot: BootInfo;
  readonly shared: SharedState;
}

const { boot, shared } = workerData as VcpuWorkerData;
const post = (message: VcpuMessage): void => parentPort!.postMessage(message);

async function main(): Promise<void> {
  const memory = GuestMemory.create([{ guestAddress: 0, size: boot.memorySize, buffer: shared.ram }]);
  const attention = new AttentionWord(shared.control);
  const exiting = new ExitingBus(shared.mailboxes, boot.vcpu, attention);
  const bus = new DoorbellBus(exiting, new DoorbellTable(shared.doorbellTable), new Int32Array(shared.doorbells), attention);
  const kernel = new GuestKernel(boot.vcpu, memory, bus, boot.heap);
  const apic = new InterruptController(new Int32Array(shared.interrupts), boot.vcpu);
  const control = new Int32Array(shared.control);
  const guest = (async () => {
    const transports = probeTransports(kernel, boot);
    const devices = await bringUpDevices(kernel, boot, transports);
    await runWorkloads(kernel, boot, devices, {
      progress: (workload, fraction) => post({ type: 'progress', workload, fraction }),
      result: (workload, result) => post({ type: 'result', workload, result }),
      idle: () => post({ type: 'idle' }),
    });
    if (boot.linger) await linger(kernel, () => Atomics.load(control, CONTROL_RELEASE) !== 0);
  })();
  await runVcpuLoop(kernel, apic, boot, guest, () => Atomics.load(control, CONTROL_STOP) !== 0);
  post({ type: 'done', exits: exiting.exits, doorbells: bus.doorbells, interrupts: kernel.interrupts });
}

main().catch((error: unknown) => {
  const code = VmmError.isInstance(error) ? error.code : 'GUEST_ERROR';
  post({ type: 'error', message: describeError(error), code });
});
