import { VmmError } from '../errors.js';
import { parseOptionList, type OptionList } from '../config/option-list.js';

/** One `--blk` device of `vmm serve`. */
export interface ServeBlkSpec {
  readonly kind: 'blk';
  readonly id: string;
  readonly path: string;
  readonly format: 'raw' | 'qcow2';
  readonly socket: string;
  readonly readOnly: boolean;
  readonly queues: number;
  readonly queueSize: number;
  readonly serial: string;
  /** Offer VIRTIO_F_RING_PACKED (the front-end decides with its own `packed=` property). */
  readonly packed: boolean;
}

/** One `--rng` device of `vmm serve`. */
export interface ServeRngSpec {
  readonly kind: 'rng';
  readonly id: string;
  readonly socket: string;
  /** Bytes per second, 0 for unlimited. */
  readonly rate: number;
}

/** One logical unit of a `--scsi` adapter: an image at a target:LUN address. */
export interface ServeScsiLun {
  readonly target: number;
  readonly lun: number;
  readonly path: string;
  readonly format: 'raw' | 'qcow2';
  readonly readOnly: boolean;
  /** Unit serial number (VPD page 0x80), printable ASCII, at most 36 bytes. */
  readonly serial: string;
}

/** One `--scsi` device of `vmm serve`: a virtio-scsi host adapter with its logical units. */
export interface ServeScsiSpec {
  readonly kind: 'scsi';
  readonly id: string;
  readonly socket: string;
  /** Request queues (`num_queues`); the control and event queues come on top. */
  readonly queues: number;
  readonly queueSize: number;
  readonly packed: boolean;
  /** At least one; `--scsi` gives one at target 0 LUN 0, a VM config may give several. */
  readonly luns: readonly ServeScsiLun[];
}

/**
 * One `--net` device of `vmm serve`: the data plane of a virtio-net device (rx/tx queue pairs) for
 * QEMU's `-netdev vhost-user`, bridged to a TAP interface. QEMU keeps the control queue and the
 * configuration space.
 */
export interface ServeNetSpec {
  readonly kind: 'net';
  readonly id: string;
  /** TAP interface name: attached if it exists, created otherwise (in the daemon's network namespace). */
  readonly tap: string;
  readonly socket: string;
  /** Queue pairs (`-netdev vhost-user,queues=N`); more than 1 opens the TAP multiqueue. */
  readonly queues: number;
  readonly queueSize: number;
  /** The device's station address; the guest's comes from the front-end (`virtio-net-pci,mac=`), and the data plane does not filter by it. */
  readonly mac: string;
  readonly mtu: number;
  readonly packed: boolean;
}

export type ServeDeviceSpec = ServeBlkSpec | ServeRngSpec | ServeScsiSpec | ServeNetSpec;

function take(options: OptionList, key: string, where: string): string {
  const value = options.get(key);
  if (value === undefined || value === '') throw new VmmError('INVALID_OPTION', `${where}: missing ${key}=`, { field: `${where}.${key}` });
  return value;
}

function flag(options: OptionList, key: string, where: string, fallback: boolean): boolean {
  const value = options.get(key);
  if (value === undefined) return fallback;
  if (value === 'on' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === 'false' || value === 'no') return false;
  throw new VmmError('INVALID_OPTION', `${where}: ${key}=${value} is not on/off`, { field: `${where}.${key}` });
}

function integer(options: OptionList, key: string, where: string, fallback: number, min: number, max: number): number {
  const value = options.get(key);
  if (value === undefined) return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new VmmError('INVALID_OPTION', `${where}: ${key}=${value} is not an integer in ${min}..${max}`, { field: `${where}.${key}` });
  return n;
}

function checkKeys(options: OptionList, allowed: readonly string[], where: string): void {
  for (const key of options.keys()) {
    if (!allowed.includes(key)) throw new VmmError('INVALID_OPTION', `${where}: unknown option ${key}= (allowed: ${allowed.join(', ')})`, { field: `${where}.${key}` });
  }
}

/** Parses `--blk id=d0,path=IMG,format=qcow2|raw,socket=SOCK[,readonly=on][,queues=N]`. */
export function parseBlkOption(text: string, index = 0): ServeBlkSpec {
  const where = `--blk #${index + 1}`;
  const options = parseOptionList(text);
  checkKeys(options, ['id', 'path', 'format', 'socket', 'readonly', 'queues', 'queue-size', 'serial', 'packed'], where);
  const format = options.get('format') ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') throw new VmmError('INVALID_OPTION', `${where}: format=${format} is not raw or qcow2`, { field: `${where}.format` });
  const queueSize = integer(options, 'queue-size', where, 256, 1, 32768);
  if ((queueSize & (queueSize - 1)) !== 0) throw new VmmError('INVALID_OPTION', `${where}: queue-size=${queueSize} is not a power of two`, { field: `${where}.queue-size` });
  const id = take(options, 'id', where);
  const serial = options.get('serial') ?? id;
  if (new TextEncoder().encode(serial).length > 20) throw new VmmError('INVALID_OPTION', `${where}: serial is longer than 20 bytes`, { field: `${where}.serial` });
  return {
    kind: 'blk',
    id,
    path: take(options, 'path', where),
    format,
    socket: take(options, 'socket', where),
    readOnly: flag(options, 'readonly', where, false),
    queues: integer(options, 'queues', where, 1, 1, 64),
    queueSize,
    serial,
    packed: flag(options, 'packed', where, true),
  };
}

/**
 * Parses `--scsi id=s0,path=IMG,format=qcow2|raw,socket=SOCK[,readonly=on][,queues=N][,serial=S]`:
 * a virtio-scsi adapter whose target 0 LUN 0 is the image.
 */
export function parseScsiOption(text: string, index = 0): ServeScsiSpec {
  const where = `--scsi #${index + 1}`;
  const options = parseOptionList(text);
  checkKeys(options, ['id', 'path', 'format', 'socket', 'readonly', 'queues', 'queue-size', 'serial', 'packed'], where);
  const format = options.get('format') ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') throw new VmmError('INVALID_OPTION', `${where}: format=${format} is not raw or qcow2`, { field: `${where}.format` });
  const queueSize = integer(options, 'queue-size', where, 128, 4, 32768);
  if ((queueSize & (queueSize - 1)) !== 0) throw new VmmError('INVALID_OPTION', `${where}: queue-size=${queueSize} is not a power of two`, { field: `${where}.queue-size` });
  const id = take(options, 'id', where);
  const serial = options.get('serial') ?? id;
  // SPC-4 VPD 0x80: printable ASCII; ScsiLogicalUnit bounds it to 36 bytes.
  if (serial.length > 36 || !/^[\x20-\x7e]*$/.test(serial)) throw new VmmError('INVALID_OPTION', `${where}: serial must be printable ASCII of at most 36 bytes`, { field: `${where}.serial` });
  return {
    kind: 'scsi',
    id,
    socket: take(options, 'socket', where),
    queues: integer(options, 'queues', where, 1, 1, 64),
    queueSize,
    packed: flag(options, 'packed', where, true),
    luns: [{ target: 0, lun: 0, path: take(options, 'path', where), format, readOnly: flag(options, 'readonly', where, false), serial }],
  };
}

/** QEMU's default MAC for the first NIC (and the net device's default). */
export const DEFAULT_NET_MAC = '52:54:00:12:34:56';

/** Parses `--net id=n0,tap=NAME,socket=SOCK[,queues=N][,mac=M][,mtu=N][,queue-size=N][,packed=on]`. */
export function parseNetOption(text: string, index = 0): ServeNetSpec {
  const where = `--net #${index + 1}`;
  const options = parseOptionList(text);
  checkKeys(options, ['id', 'tap', 'socket', 'queues', 'queue-size', 'mac', 'mtu', 'packed'], where);
  const tap = take(options, 'tap', where);
  // IFNAMSIZ is 16 with the terminating NUL; no '/' or whitespace (the kernel refuses them).
  if (new TextEncoder().encode(tap).length > 15 || !/^[\w.:-]+$/.test(tap)) throw new VmmError('INVALID_OPTION', `${where}: tap=${tap} is not an interface name (at most 15 bytes of letters, digits, _ . : -)`, { field: `${where}.tap` });
  const mac = (options.get('mac') ?? DEFAULT_NET_MAC).toLowerCase();
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) !== 0) throw new VmmError('INVALID_OPTION', `${where}: mac=${mac} is not a unicast MAC address (aa:bb:cc:dd:ee:ff)`, { field: `${where}.mac` });
  const queueSize = integer(options, 'queue-size', where, 256, 2, 32768);
  if ((queueSize & (queueSize - 1)) !== 0) throw new VmmError('INVALID_OPTION', `${where}: queue-size=${queueSize} is not a power of two`, { field: `${where}.queue-size` });
  return {
    kind: 'net',
    id: take(options, 'id', where),
    tap,
    socket: take(options, 'socket', where),
    // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX is 0x8000; a multiqueue TAP takes at most 256 fds.
    queues: integer(options, 'queues', where, 1, 1, 256),
    queueSize,
    mac,
    mtu: integer(options, 'mtu', where, 1500, 68, 65535),
    packed: flag(options, 'packed', where, true),
  };
}

/** Parses `--rng id=r0,socket=SOCK[,rate=BYTES_PER_SECOND]`. */
export function parseRngOption(text: string, index = 0): ServeRngSpec {
  const where = `--rng #${index + 1}`;
  const options = parseOptionList(text);
  checkKeys(options, ['id', 'socket', 'rate'], where);
  return { kind: 'rng', id: take(options, 'id', where), socket: take(options, 'socket', where), rate: integer(options, 'rate', where, 0, 0, 2 ** 40) };
}

/** All devices of one `vmm serve`, with ids and sockets unique. Nothing is started when any is bad. */
export function parseServeOptions(input: { blk?: readonly string[]; rng?: readonly string[]; scsi?: readonly string[]; net?: readonly string[] }): ServeDeviceSpec[] {
  const specs: ServeDeviceSpec[] = [
    ...(input.blk ?? []).map(parseBlkOption),
    ...(input.scsi ?? []).map(parseScsiOption),
    ...(input.net ?? []).map(parseNetOption),
    ...(input.rng ?? []).map(parseRngOption),
  ];
  if (specs.length === 0) throw new VmmError('INVALID_OPTION', 'vmm serve needs at least one --blk, --scsi, --net or --rng device');
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(`id:${spec.id}`)) throw new VmmError('INVALID_OPTION', `device id ${spec.id} is used twice`, { field: spec.id });
    if (seen.has(`socket:${spec.socket}`)) throw new VmmError('INVALID_OPTION', `socket ${spec.socket} is used twice`, { field: spec.id });
    if (spec.kind === 'net' && seen.has(`tap:${spec.tap}`)) throw new VmmError('INVALID_OPTION', `tap ${spec.tap} is used twice`, { field: spec.id });
    seen.add(`id:${spec.id}`);
    seen.add(`socket:${spec.socket}`);
    if (spec.kind === 'net') seen.add(`tap:${spec.tap}`);
  }
  return specs;
}
