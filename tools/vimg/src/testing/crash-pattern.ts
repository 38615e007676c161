/**
 * The request stream of the crash-injection writer, shared by the writer (a child process over
 * the built packages) and the test that checks the image after SIGKILL.
 */

/** The bytes write number `seq` puts on the disk: distinct per write and per byte. */
export function writePattern(seq: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const base = (seq * 131 + 17) & 0xff;
  for (let i = 0; i < length; i += 1) out[i] = (base + i * 7 + (i >> 9)) & 0xff || 1;
  return out;
}

/** A writer log line: `W seq offset length` (write), `Z seq offset length` (zeroes), `F n` (writes 0..n-1 flushed). */
export type CrashLogEntry = { kind: 'W' | 'Z'; seq: number; offset: number; length: number } | { kind: 'F'; seq: number };

/** Parses complete log lines; a torn last line (the kill hit mid-write) is ignored. */
export function parseCrashLog(text: string): CrashLogEntry[] {
  const lines = text.split('\n');
  lines.pop(); // incomplete (or empty) last line
  const out: CrashLogEntry[] = [];
  for (const line of lines) {
    const parts = line.split(' ');
    if (parts[0] === 'F') out.push({ kind: 'F', seq: Number(parts[1]) });
    else if (parts[0] === 'W' || parts[0] === 'Z') out.push({ kind: parts[0], seq: Number(parts[1]), offset: Number(parts[2]), length: Number(parts[3]) });
  }
  return out;
}

/** A small deterministic PRNG (mulberry32). */
export function crashPrng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
