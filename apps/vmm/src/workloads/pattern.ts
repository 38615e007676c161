/**
 * The verify workload's data: every 4-byte word at disk byte offset `o` holds a hash of
 * (`seed`, `o / 4`). A block written at one offset cannot pass for another, and a run with a
 * different seed writes different data, so stale data never verifies.
 */
export function patternWord(seed: number, wordIndex: number): number {
  // A 32-bit integer hash (murmur3's finalizer) of the seed mixed with the word index.
  let h = (seed ^ Math.imul(wordIndex | 0, 0x9e37_79b1) ^ Math.floor(wordIndex / 2 ** 32)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fills `bytes` with the pattern for disk bytes `[diskOffset, diskOffset + bytes.length)` (4-aligned). */
export function fillPattern(bytes: Uint8Array, diskOffset: number, seed: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = diskOffset / 4;
  for (let i = 0; i + 4 <= bytes.length; i += 4) view.setUint32(i, patternWord(seed, first + i / 4), true);
}

/**
 * The offset inside `bytes` of the first word that differs from the pattern, or -1 when every
 * word matches.
 */
export function findPatternMismatch(bytes: Uint8Array, diskOffset: number, seed: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = diskOffset / 4;
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    if (view.getUint32(i, true) !== patternWord(seed, first + i / 4)) return i;
  }
  return -1;
}
