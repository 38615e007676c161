/**
 * The few Web platform APIs the backends use (present in browsers and in Node ≥ 18), typed
 * here because the pure layers compile without DOM or Node type libraries.
 */
interface WebApis {
  TextEncoder: new () => { encode(input: string): Uint8Array };
  TextDecoder: new (label?: string) => { decode(input: Uint8Array): string };
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  performance?: { now(): number };
}

const web = globalThis as unknown as WebApis;

/** UTF-8 bytes of a string. */
export function utf8Encode(text: string): Uint8Array {
  return new web.TextEncoder().encode(text);
}

/** A string from UTF-8 bytes (invalid sequences become U+FFFD). */
export function utf8Decode(bytes: Uint8Array): string {
  return new web.TextDecoder().decode(bytes);
}

/** Monotonic milliseconds (performance.now, or Date.now where it is missing). */
export function monotonicNow(): number {
  return web.performance !== undefined ? web.performance.now() : Date.now();
}

export const setTimer = (callback: () => void, ms: number): unknown => web.setTimeout(callback, ms);
export const clearTimer = (handle: unknown): void => web.clearTimeout(handle);
