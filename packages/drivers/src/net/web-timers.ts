/**
 * The timer, clock and random Web APIs the net driver and stack use (present in browsers and in
 * Node ≥ 18), typed here because the pure layers compile without DOM or Node type libraries.
 */
interface TimerApis {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  performance: { now(): number };
  crypto: { getRandomValues<T extends Uint8Array>(array: T): T };
}

const web = globalThis as unknown as TimerApis;

/** A cancellable timer. */
export interface Timer {
  cancel(): void;
}

/** Calls `callback` after `ms` milliseconds. */
export function startTimer(ms: number, callback: () => void): Timer {
  const handle = web.setTimeout(callback, ms);
  return { cancel: () => web.clearTimeout(handle) };
}

/** Resolves after `ms` milliseconds (0: after the current macrotask). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => web.setTimeout(resolve, ms));
}

/** Monotonic milliseconds (sub-millisecond resolution). */
export function nowMs(): number {
  return web.performance.now();
}

/** `length` cryptographically random bytes. */
export function randomBytes(length: number): Uint8Array {
  return web.crypto.getRandomValues(new Uint8Array(length));
}
