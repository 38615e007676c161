import type { VirtioTransport } from '@virtio-ts/device';
import { ConsoleDriver } from '@virtio-ts/drivers';
import type { BootInfo } from '../engine/boot-info.js';
import type { GuestConsole } from '../workloads/guest-devices.js';
import type { GuestKernel } from './guest-kernel.js';

/** Bytes of console input kept while no reader waits (the echo never sends more than the guest wrote). */
const MAX_BACKLOG = 1 << 20;

/**
 * Initialises the console front-end and returns port 0 as the workloads see it: `write` on the
 * transmitq, `read` from what the receiveq delivered (kept in order until read).
 */
export function attachConsole(kernel: GuestKernel, transport: VirtioTransport, boot: BootInfo): Promise<GuestConsole> {
  void kernel;
  const driver = ConsoleDriver.init(transport, { queueSize: boot.queueSize });
  const backlog: Uint8Array[] = [];
  let backlogBytes = 0;
  const readers: (() => void)[] = [];
  driver.onData(0, (bytes) => {
    if (backlogBytes + bytes.length > MAX_BACKLOG) return; // dropped: the guest reads too slowly
    backlog.push(bytes.slice());
    backlogBytes += bytes.length;
    readers.shift()?.();
  });
  const take = (maxLength: number): Uint8Array => {
    const first = backlog[0]!;
    if (first.length <= maxLength) {
      backlog.shift();
      backlogBytes -= first.length;
      return first;
    }
    backlog[0] = first.subarray(maxLength);
    backlogBytes -= maxLength;
    return first.subarray(0, maxLength);
  };
  return Promise.resolve({
    write: (data) => driver.write(0, data),
    read: async (maxLength) => {
      while (backlog.length === 0) await new Promise<void>((resolve) => readers.push(resolve));
      return take(maxLength);
    },
  });
}
