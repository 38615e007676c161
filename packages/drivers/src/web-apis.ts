/**
 * The few Web platform APIs the drivers use (present in browsers and in Node ≥ 18), typed here
 * because the pure layers compile without DOM or Node type libraries.
 */
interface WebApis {
  TextDecoder: new (label?: string) => { decode(input: Uint8Array): string };
  queueMicrotask(callback: () => void): void;
}

const web = globalThis as unknown as WebApis;


/** A string from UTF-8 bytes (invalid sequences become U+FFFD). */
export function utf8Decode(bytes: Uint8Array): string {
  return new web.TextDecoder().decode(bytes);
}

/** Runs `callback` after the current task's synchronous code. */
export function deferMicrotask(callback: () => void): void {
  web.queueMicrotask(callback);
}
