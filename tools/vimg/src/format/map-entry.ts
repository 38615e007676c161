/** One run of `vimg map`, with qemu-img's MapEntry fields. */
export interface MapEntry {
  readonly start: number;
  readonly length: number;
  readonly depth: number;
  readonly present: boolean;
  readonly zero: boolean;
  readonly data: boolean;
  /** Host offset, when the data is stored uncompressed in a known file. */
  readonly offset?: number;
  /** The file at `depth` (human output only). */
  readonly filename?: string;
}

/** qemu-img's entries_can_be_merged: same flags, same file, and contiguous host offsets. */
export function canMerge(current: MapEntry, next: MapEntry): boolean {
  if (current.present !== next.present || current.zero !== next.zero || current.data !== next.data || current.depth !== next.depth) return false;
  if (current.filename !== next.filename) return false;
  if ((current.offset === undefined) !== (next.offset === undefined)) return false;
  if (current.offset !== undefined && current.offset + current.length !== next.offset) return false;
  return current.start + current.length === next.start;
}

/** Merges adjacent runs as qemu-img map does before printing. */
export function mergeMapEntries(entries: readonly MapEntry[]): MapEntry[] {
  const out: MapEntry[] = [];
  for (const entry of entries) {
    const last = out[out.length - 1];
    if (last !== undefined && canMerge(last, entry)) out[out.length - 1] = { ...last, length: last.length + entry.length };
    else out.push(entry);
  }
  return out;
}

function hex(value: number): string {
  // C's %#x: "0" for zero, 0x-prefixed otherwise.
  return value === 0 ? '0' : `0x${value.toString(16)}`;
}

/**
 * `qemu-img map` human output (qemu 7.2 dump_map_entry): only data that is not zero is listed,
 * and runs that differ only in the 0 / ZERO / ZERO|DATA distinction are coalesced first.
 */
export function formatMapHuman(entries: readonly MapEntry[]): string {
  let out = `${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`;
  const normalised = entries.map((entry) => (!entry.data || entry.zero ? { ...entry, data: false, zero: true, offset: undefined, filename: undefined, depth: 0, present: false } : entry));
  for (const entry of mergeMapEntries(normalised)) {
    if (entry.data && !entry.zero) out += `${hex(entry.start).padEnd(16)}${hex(entry.length).padEnd(16)}${hex(entry.offset ?? 0).padEnd(16)}${entry.filename ?? ''}\n`;
  }
  return out;
}

/** `qemu-img map --output=json`: one entry per line, byte for byte qemu's layout. */
export function formatMapJson(entries: readonly MapEntry[]): string {
  const merged = mergeMapEntries(entries);
  const lines = merged.map((entry) => {
    let line = `{ "start": ${entry.start}, "length": ${entry.length}, "depth": ${entry.depth}, "present": ${entry.present}, "zero": ${entry.zero}, "data": ${entry.data}`;
    if (entry.offset !== undefined) line += `, "offset": ${entry.offset}`;
    return `${line}}`;
  });
  return `[${lines.join(',\n')}]\n`;
}
