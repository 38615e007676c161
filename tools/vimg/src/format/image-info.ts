import { formatSize } from '../cli/size.js';

/** One internal snapshot, with qemu-img's SnapshotInfo fields. */
export interface SnapshotInfo {
  readonly id: string;
  readonly name: string;
  readonly vmStateSize: number;
  readonly dateSec: number;
  readonly dateNsec: number;
  readonly vmClockNsec: number;
  /** Instruction count; absent when the snapshot does not record one (qemu: -1). */
  readonly icount?: number;
}

/** What `vimg info` shows for one image: qemu-img's ImageInfo, camelCased. */
export interface ImageInfo {
  readonly filename: string;
  readonly format: string;
  readonly virtualSize: number;
  readonly actualSize?: number;
  readonly clusterSize?: number;
  readonly dirtyFlag?: boolean;
  readonly backingFilename?: string;
  readonly fullBackingFilename?: string;
  readonly backingFilenameFormat?: string;
  readonly snapshots?: readonly SnapshotInfo[];
  readonly formatSpecific?: { readonly type: string; readonly data: Readonly<Record<string, unknown>> };
}

/** qcow2 format-specific keys in the order qemu-img 7.2 prints them. */
const QCOW2_KEY_ORDER = ['compat', 'compression-type', 'lazy-refcounts', 'refcount-bits', 'corrupt', 'extended-l2'];

function orderedData(data: Readonly<Record<string, unknown>>): [string, unknown][] {
  const known = QCOW2_KEY_ORDER.filter((key) => key in data && data[key] !== undefined).map((key): [string, unknown] => [key, data[key]]);
  const rest = Object.entries(data).filter(([key, value]) => !QCOW2_KEY_ORDER.includes(key) && value !== undefined);
  return [...known, ...rest];
}

/** The JSON object `qemu-img info --output=json` prints for one image (same keys, same order). */
export function imageInfoToJson(info: ImageInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (info.backingFilenameFormat !== undefined) out['backing-filename-format'] = info.backingFilenameFormat;
  if (info.snapshots !== undefined && info.snapshots.length > 0) out['snapshots'] = info.snapshots.map(snapshotToJson);
  out['virtual-size'] = info.virtualSize;
  out['filename'] = info.filename;
  if (info.clusterSize !== undefined) out['cluster-size'] = info.clusterSize;
  out['format'] = info.format;
  if (info.actualSize !== undefined) out['actual-size'] = info.actualSize;
  if (info.formatSpecific !== undefined) out['format-specific'] = { type: info.formatSpecific.type, data: Object.fromEntries(orderedData(info.formatSpecific.data)) };
  if (info.fullBackingFilename !== undefined) out['full-backing-filename'] = info.fullBackingFilename;
  if (info.backingFilename !== undefined) out['backing-filename'] = info.backingFilename;
  out['dirty-flag'] = info.dirtyFlag ?? false;
  return out;
}

function snapshotToJson(snapshot: SnapshotInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (snapshot.icount !== undefined) out['icount'] = snapshot.icount;
  out['vm-clock-nsec'] = snapshot.vmClockNsec % 1e9;
  out['name'] = snapshot.name;
  out['date-sec'] = snapshot.dateSec;
  out['date-nsec'] = snapshot.dateNsec;
  out['vm-clock-sec'] = Math.floor(snapshot.vmClockNsec / 1e9);
  out['id'] = snapshot.id;
  out['vm-state-size'] = snapshot.vmStateSize;
  return out;
}

/** qemu's JSON pretty printer: four-space indent, `"key": value`, as JSON.stringify does. */
export function toQemuJson(value: unknown): string {
  return JSON.stringify(value, null, 4);
}

/** `qemu-img info` human output for one image (qemu 7.2 bdrv_image_info_dump). */
export function formatImageInfoHuman(info: ImageInfo): string {
  let out = `image: ${info.filename}\n`;
  out += `file format: ${info.format}\n`;
  out += `virtual size: ${formatSize(info.virtualSize)} (${info.virtualSize} bytes)\n`;
  out += `disk size: ${info.actualSize === undefined ? 'unavailable' : formatSize(info.actualSize)}\n`;
  if (info.clusterSize !== undefined) out += `cluster_size: ${info.clusterSize}\n`;
  if (info.dirtyFlag === true) out += 'cleanly shut down: no\n';
  if (info.backingFilename !== undefined) {
    out += `backing file: ${info.backingFilename}`;
    if (info.fullBackingFilename === undefined) out += ' (cannot determine actual path)';
    else if (info.fullBackingFilename !== info.backingFilename) out += ` (actual path: ${info.fullBackingFilename})`;
    out += '\n';
    if (info.backingFilenameFormat !== undefined) out += `backing file format: ${info.backingFilenameFormat}\n`;
  }
  if (info.snapshots !== undefined && info.snapshots.length > 0) {
    out += 'Snapshot list:\n';
    out += formatSnapshotTable(info.snapshots);
  }
  if (info.formatSpecific !== undefined) {
    out += 'Format specific information:\n';
    for (const [key, value] of orderedData(info.formatSpecific.data)) out += `    ${key.replace(/-/g, ' ')}: ${formatScalar(value)}\n`;
  }
  return out;
}

function formatScalar(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** The snapshot table of `qemu-img snapshot -l` and `info` (qemu 7.2 bdrv_snapshot_dump). */
export function formatSnapshotTable(snapshots: readonly SnapshotInfo[]): string {
  let out = `${'ID'.padEnd(10)}${'TAG'.padEnd(17)}${'VM SIZE'.padStart(8)}${'DATE'.padStart(20)}${'VM CLOCK'.padStart(13)}${'ICOUNT'.padStart(11)}\n`;
  for (const snapshot of snapshots) {
    const secs = Math.floor(snapshot.vmClockNsec / 1e9);
    const clock = `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.${String(Math.floor(snapshot.vmClockNsec / 1e6) % 1000).padStart(3, '0')}`;
    const icount = snapshot.icount === undefined ? '' : String(snapshot.icount);
    out += `${snapshot.id.padEnd(9)} ${snapshot.name.padEnd(16)} ${formatSize(snapshot.vmStateSize).padStart(8)}${formatLocalDate(snapshot.dateSec).padStart(20)}${clock.padStart(13)}${icount.padStart(11)}\n`;
  }
  return out;
}

function pad2(value: number): string {
  return String(value).padStart(2, '0');
}

/** `%Y-%m-%d %H:%M:%S` in local time, as g_date_time_format. */
function formatLocalDate(seconds: number): string {
  const date = new Date(seconds * 1000);
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}
