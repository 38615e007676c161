import { VmmError } from '../errors.js';
import type { WorkloadContext } from './guest-devices.js';

export interface ConsoleResult {
  readonly type: 'console';
  readonly bytes: number;
  readonly roundTripMs: number;
}

/** Longest the guest waits for the echo of one message. */
const ECHO_TIMEOUT_MS = 10_000;

/**
 * `console`: writes `message` to the console's transmitq; the VMM's console backend echoes every
 * byte back into the receiveq; the guest reads until it has the whole message and compares.
 */
export async function runConsole(context: WorkloadContext, message: string): Promise<ConsoleResult> {
  const port = context.console();
  const sent = new TextEncoder().encode(message);
  const start = performance.now();
  await port.write(sent);
  const received = new Uint8Array(sent.length);
  let have = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new VmmError('TIMEOUT', `console: echo incomplete after ${ECHO_TIMEOUT_MS} ms (${have}/${sent.length} bytes)`)),
      ECHO_TIMEOUT_MS,
    );
  });
  try {
    while (have < sent.length) {
      const chunk = await Promise.race([port.read(sent.length - have), timeout]);
      received.set(chunk.subarray(0, sent.length - have), have);
      have += Math.min(chunk.length, sent.length - have);
    }
  } finally {
    clearTimeout(timer);
  }
  const at = received.findIndex((b, i) => b !== sent[i]);
  if (at >= 0) throw new VmmError('GUEST_ERROR', `console: echo differs at byte ${at}`, { offset: at });
  return { type: 'console', bytes: sent.length, roundTripMs: performance.now() - start };
}
