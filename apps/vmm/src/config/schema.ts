import * as v from 'valibot';
import { VmmError } from '../errors.js';
import { formatIpv4Address, parseIpv4Address, parseIpv4Cidr, parseMacAddress, parseNetBackend, withNetDefaults } from './net.js';
import { parseDuration, parseSize } from './size.js';

// Bounds on every number a config may carry: the config file is untrusted input
// (HOSTILE-INPUTS.md), and guest RAM is allocated up front as one SharedArrayBuffer.
/** Smallest guest RAM: rings, DMA buffers and a bench's in-flight requests fit in 16 MiB. */
export const MIN_MEMORY = 16 * 2 ** 20;
/** Largest guest RAM: Node 20 allocates a SharedArrayBuffer of up to 4 GiB; 2 GiB leaves room. */
export const MAX_MEMORY = 2 * 2 ** 30;
/** vCPU worker threads; more than 16 only measures the scheduler on these machines. */
export const MAX_VCPUS = 16;
/** Requests in flight per bench job: the largest queue size we allocate. */
export const MAX_IODEPTH = 1024;
/** Largest request of `verify` and `bench` (a virtio-blk request is bounded by seg_max*size_max anyway). */
export const MAX_BLOCK_SIZE = 4 * 2 ** 20;

/** A size given as a byte count or as text (`256M`), checked against [min, max]. */
function size(min: number, max: number) {
  return v.pipe(
    v.union([v.number(), v.string()], 'Expected a size (a byte count or text such as "256M")'),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const input = dataset.value;
      const bytes = typeof input === 'number' ? input : parseSize(input);
      if (bytes === undefined || !Number.isSafeInteger(bytes)) {
        addIssue({ message: `Expected a size such as "256M" but received ${JSON.stringify(input)}` });
        return NEVER;
      }
      if (bytes < min || bytes > max) {
        addIssue({ message: `Expected a size in [${min}, ${max}] bytes but received ${bytes}` });
        return NEVER;
      }
      return bytes;
    }),
  );
}

/** A duration given in seconds (a number) or as text (`2s`, `500ms`); the output is milliseconds. */
function duration(maxMs: number) {
  return v.pipe(
    v.union([v.number(), v.string()], 'Expected a duration (seconds, or text such as "2s" or "500ms")'),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const input = dataset.value;
      const ms = typeof input === 'number' ? Math.round(input * 1000) : parseDuration(input);
      if (ms === undefined || !Number.isFinite(ms) || ms <= 0 || ms > maxMs) {
        addIssue({ message: `Expected a duration in (0, ${maxMs / 1000}] seconds but received ${JSON.stringify(input)}` });
        return NEVER;
      }
      return ms;
    }),
  );
}

function int(min: number, max: number) {
  return v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
}

function powerOfTwo(min: number, max: number) {
  return v.pipe(
    int(min, max),
    v.check((n) => (n & (n - 1)) === 0, (issue) => `Expected a power of two but received ${String(issue.input)}`),
  );
}

/** The medium of a disk: an image file, or a memory disk of `size` (blk devices and scsi LUNs). */
const diskMedium = {
  /** Image file. Without it the disk lives in memory and `size` says how large it is. */
  path: v.optional(v.pipe(v.string(), v.minLength(1))),
  /** Size of a memory-backed disk (only without `path`). */
  size: v.optional(size(512, 64 * 2 ** 30)),
  format: v.optional(v.picklist(['raw', 'qcow2']), 'raw'),
  readOnly: v.optional(v.boolean(), false),
  /** writeback: the guest sees a volatile cache and flushes; writethrough: every write is flushed; none: host cache bypassed where the host adapter can. */
  cache: v.optional(v.picklist(['writeback', 'writethrough', 'none']), 'writeback'),
};
function exactlyOneMedium<T extends { path?: string; size?: number }>() {
  return v.check<T, string>((d) => (d.path === undefined) !== (d.size === undefined), 'Expected exactly one of "path" (an image file) and "size" (a memory-backed disk)');
}

const BlkDeviceSchema = v.pipe(
  v.strictObject({
    type: v.literal('blk'),
    ...diskMedium,
    /** VIRTIO_BLK_F_MQ request queues. */
    queues: v.optional(int(1, 16), 1),
  }),
  exactlyOneMedium(),
);

/** Largest target number of a virtio-scsi LUN address (§5.6.6.1: one byte). */
export const MAX_SCSI_TARGET = 255;
/** Largest LUN of a virtio-scsi LUN address (flat space addressing: 14 bits). */
export const MAX_SCSI_LUN = 16383;
/** Logical units one scsi device may carry in a config. */
export const MAX_SCSI_LUNS = 16;

const ScsiLunSchema = v.pipe(
  v.strictObject({
    ...diskMedium,
    /** Target of the LUN's address (default 0). */
    target: v.optional(int(0, MAX_SCSI_TARGET), 0),
    /** LUN of the address (default: how many LUNs of the same target come before it in the list). */
    lun: v.optional(int(0, MAX_SCSI_LUN)),
  }),
  exactlyOneMedium(),
);

/** A virtio-scsi controller (VIRTIO 1.3 §5.6) with its logical units, each backed by a disk. */
const ScsiDeviceSchema = v.pipe(
  v.strictObject({
    type: v.literal('scsi'),
    /** Request queues (`num_queues`). */
    queues: v.optional(int(1, 16), 1),
    luns: v.pipe(v.array(ScsiLunSchema), v.minLength(1, 'Expected at least one LUN'), v.maxLength(MAX_SCSI_LUNS, `Expected at most ${MAX_SCSI_LUNS} LUNs`)),
  }),
  // A LUN without `lun` takes the next number on its target: 0 for the first LUN of each target.
  v.transform((d) => ({ ...d, luns: d.luns.map((l, i) => ({ ...l, lun: l.lun ?? d.luns.slice(0, i).filter((o) => o.target === l.target).length })) })),
  v.check(
    (d) => new Set(d.luns.map((l) => `${l.target}:${l.lun}`)).size === d.luns.length,
    'Expected every LUN at its own target:lun address',
  ),
);

/** QEMU's default station address; VM i of a group gets the last byte + i (see `parseVmGroup`). */
export const DEFAULT_NET_MAC = '52:54:00:12:34:56';
/** The model guest's address on net device n of VM i defaults to 10.0.n.(i+1)/24. */
export const DEFAULT_NET_IP = '10.0.0.1/24';
/** Queue pairs of a net device. */
export const MAX_NET_QUEUE_PAIRS = 8;

/** A string checked by a parser that returns a reason (a string) for bad input. */
function parsed(parse: (text: string) => unknown) {
  return v.pipe(
    v.string(),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const result = parse(dataset.value);
      if (typeof result === 'string') addIssue({ message: result });
    }),
  );
}

/** A virtio-net device (VIRTIO 1.3 §5.1) on a host back-end; the model guest runs an IPv4 stack on it. */
const NetDeviceSchema = v.strictObject({
  type: v.literal('net'),
  /** switch:NAME (in-process L2 switch shared by the VMs of this run), tap:IFNAME, stream:PATH[,server=on]. */
  backend: parsed(parseNetBackend),
  /** The device's station address (VIRTIO_NET_F_MAC). */
  mac: v.optional(v.pipe(parsed(parseMacAddress), v.toLowerCase()), DEFAULT_NET_MAC),
  /** The model guest's IPv4 address and prefix on this interface. */
  ip: v.optional(parsed(parseIpv4Cidr), DEFAULT_NET_IP),
  /** Queue pairs (VIRTIO_NET_F_MQ when > 1; a TAP only). */
  queues: v.optional(int(1, MAX_NET_QUEUE_PAIRS), 1),
  /** The device's MTU (VIRTIO_NET_F_MTU); a switch carries the largest MTU of its devices. */
  mtu: v.optional(int(68, 65535), 1500),
});

const DeviceSchema = v.variant('type', [
  NetDeviceSchema,
  BlkDeviceSchema,
  ScsiDeviceSchema,
  v.strictObject({ type: v.literal('rng') }),
  v.strictObject({
    type: v.literal('console'),
    /** The host side: echo (default), stdio, pty, or socket:PATH (a Unix socket the VMM listens on). */
    backend: v.optional(v.union([v.picklist(['echo', 'stdio', 'pty']), v.pipe(v.string(), v.regex(/^socket:.+$/, 'Expected echo, stdio, pty or socket:PATH'))])),
  }),
]);

const VerifySchema = v.strictObject({
  type: v.literal('verify'),
  /** Which disk: blk devices and scsi LUNs, numbered in config order. */
  disk: v.optional(int(0, 63), 0),
  /** Bytes of the disk to cover; default: the whole disk up to 64 MiB. */
  size: v.optional(size(512, 64 * 2 ** 30)),
  bs: v.optional(size(512, MAX_BLOCK_SIZE), 64 * 1024),
  iodepth: v.optional(int(1, MAX_IODEPTH), 8),
  /** Seed of the data pattern, so two runs write different data. */
  seed: v.optional(int(0, 2 ** 32 - 1)),
});

const BenchSchema = v.strictObject({
  type: v.literal('bench'),
  disk: v.optional(int(0, 63), 0),
  rw: v.optional(v.picklist(['read', 'write', 'randread', 'randwrite', 'randrw']), 'randread'),
  bs: v.optional(size(512, MAX_BLOCK_SIZE), 4096),
  iodepth: v.optional(int(1, MAX_IODEPTH), 1),
  /** Jobs run on vCPUs round-robin, each on its own request queue when the disk has several. */
  numjobs: v.optional(int(1, 64), 1),
  /** Milliseconds (the JSON number is seconds, as fio's runtime). */
  runtime: v.optional(duration(3_600_000), 2),
  /** Bytes of the disk the job touches; default: the whole disk. */
  size: v.optional(size(512, 64 * 2 ** 30)),
  /** randrw: percentage of reads (fio rwmixread). */
  rwmixread: v.optional(int(0, 100), 50),
});

/** A peer's IPv4 address; without it, the same net device's address on the next VM of the run. */
const peer = v.optional(
  v.pipe(
    v.string(),
    v.check((text) => parseIpv4Address(text) !== undefined, (issue) => `Expected an IPv4 address such as "10.0.0.2" but received ${JSON.stringify(issue.input)}`),
  ),
);
/** Which net device (index among the net devices). */
const netNumber = v.optional(int(0, 31), 0);

const PingSchema = v.strictObject({
  type: v.literal('ping'),
  net: netNumber,
  peer,
  /** ICMP echo requests, one after another. */
  count: v.optional(int(1, 100_000), 4),
  /** ICMP data bytes per request (`ping -s`). */
  size: v.optional(int(0, 65507), 56),
  /** How long to wait for each reply. */
  timeout: v.optional(duration(60_000), 1),
  /** Time from one request to the next (`ping -i`); without it, the next goes as soon as the reply is in. */
  interval: v.optional(duration(60_000)),
});

const UdpEchoSchema = v.strictObject({
  type: v.literal('udp-echo'),
  net: netNumber,
  peer,
  /** The peer's echo port (every model guest answers on 7, RFC 862). */
  port: v.optional(int(1, 65535), 7),
  /** Datagrams sent, one after another, each checked against its echo. */
  count: v.optional(int(1, 100_000), 16),
  /** UDP payload bytes of each datagram. */
  size: v.optional(int(1, 65507), 512),
  /** How long to wait for each echo. */
  timeout: v.optional(duration(60_000), 1),
});

const NetBenchSchema = v.strictObject({
  type: v.literal('net-bench'),
  net: netNumber,
  peer,
  /** IPv4 packet size in bytes (IP header + UDP header + payload): 28 to 65535, at most the MTU. */
  size: v.optional(int(28, 65535), 1500),
  /** Milliseconds (the JSON number is seconds). */
  runtime: v.optional(duration(3_600_000), 2),
  /** The peer's bench port (every model guest counts datagrams on 5001). */
  port: v.optional(int(1, 65535), 5001),
});

const WorkloadSchema = v.variant('type', [
  PingSchema,
  UdpEchoSchema,
  NetBenchSchema,
  VerifySchema,
  BenchSchema,
  v.strictObject({ type: v.literal('console'), message: v.optional(v.pipe(v.string(), v.maxLength(65536)), 'hello from the model guest') }),
  v.strictObject({ type: v.literal('rng'), bytes: v.optional(size(1, 64 * 2 ** 20), 4096) }),
]);

/** The VM config schema: the JSON file and the command line both validate against it. */
export const VmConfigSchema = v.strictObject({
  /** model: the model guest (vCPU worker threads driving our devices); qemu: a real Linux guest under QEMU with the devices over vhost-user. */
  engine: v.optional(v.picklist(['model', 'qemu']), 'model'),
  memory: v.optional(size(MIN_MEMORY, MAX_MEMORY), 256 * 2 ** 20),
  vcpus: v.optional(int(1, MAX_VCPUS), 1),
  transport: v.optional(v.picklist(['pci', 'mmio']), 'pci'),
  ring: v.optional(v.picklist(['split', 'packed']), 'split'),
  /** Offer VIRTIO_RING_F_EVENT_IDX. */
  eventIdx: v.optional(v.boolean(), true),
  /** Offer VIRTIO_RING_F_INDIRECT_DESC. */
  indirect: v.optional(v.boolean(), true),
  /** Queue size offered by every device (queue_size, §4.1.4.3). */
  queueSize: v.optional(powerOfTwo(2, 32768), 256),
  /** workers: vCPU worker threads with synchronous exits; inline: one thread, synchronous dispatch. */
  dispatch: v.optional(v.picklist(['workers', 'inline']), 'workers'),
  devices: v.optional(v.pipe(v.array(DeviceSchema), v.maxLength(32)), []),
  workloads: v.optional(v.pipe(v.array(WorkloadSchema), v.maxLength(64)), []),
  /** Seconds after which a run is abandoned with TIMEOUT. */
  timeout: v.optional(duration(24 * 3_600_000), 600),
});

/** The validated VM config, with every default filled in. */
export type VmConfig = v.InferOutput<typeof VmConfigSchema>;
/** The config as written in JSON (before defaults). */
export type VmConfigInput = v.InferInput<typeof VmConfigSchema>;
export type DeviceConfig = VmConfig['devices'][number];
export type BlkDeviceConfig = Extract<DeviceConfig, { type: 'blk' }>;
export type ScsiDeviceConfig = Extract<DeviceConfig, { type: 'scsi' }>;
export type NetDeviceConfig = Extract<DeviceConfig, { type: 'net' }>;
export type PingWorkloadConfig = Extract<WorkloadConfig, { type: 'ping' }>;
export type UdpEchoWorkloadConfig = Extract<WorkloadConfig, { type: 'udp-echo' }>;
export type NetBenchWorkloadConfig = Extract<WorkloadConfig, { type: 'net-bench' }>;
/** Net workloads: each names a net device and a peer address. */
export type NetWorkloadConfig = PingWorkloadConfig | UdpEchoWorkloadConfig | NetBenchWorkloadConfig;
export type ScsiLunConfig = ScsiDeviceConfig['luns'][number];
export type WorkloadConfig = VmConfig['workloads'][number];
export type VerifyWorkloadConfig = Extract<WorkloadConfig, { type: 'verify' }>;
export type BenchWorkloadConfig = Extract<WorkloadConfig, { type: 'bench' }>;

/** How {@link parseVmConfig} reads a config: alone, or as VM `vm` of a multi-VM run. */
export interface ParseVmOptions {
  /** Prefix of every field path in messages (`vms.1.`). */
  readonly path?: string;
  /** Position in a multi-VM run: net devices without `mac`/`ip` get defaults that differ per VM. Default 0. */
  readonly vm?: number;
  /** Part of a multi-VM run: a net workload without `peer` is resolved later (the next VM's address). */
  readonly inGroup?: boolean;
}

/** Throws INVALID_CONFIG listing every issue with its field (`... → at devices.0.format`). */
function fail(issues: readonly { message: string; path: string | null }[]): never {
  const first = issues[0];
  const lines = issues.map((issue) => (issue.path === null ? issue.message : `${issue.message} → at ${issue.path}`));
  throw new VmmError('INVALID_CONFIG', `invalid config: ${lines.join('; ')}`, first?.path === null || first === undefined ? {} : { field: first.path });
}

/**
 * Validates a config. Nothing is applied here: the result is a fresh, frozen-by-convention
 * object, and on any error nothing has been created yet. Throws VmmError INVALID_CONFIG whose
 * message lists every issue with its field (`... → at devices.0.format`).
 */
export function parseVmConfig(input: unknown, options: ParseVmOptions = {}): VmConfig {
  const prefix = options.path ?? '';
  const result = v.safeParse(VmConfigSchema, withNetDefaults(input, options.vm ?? 0));
  if (result.success) {
    checkCrossFields(result.output, prefix, options.inGroup === true);
    return result.output;
  }
  fail(
    result.issues.map((issue) => {
      const path = v.getDotPath(issue);
      return { message: issue.message, path: path === null ? (prefix === '' ? null : prefix.slice(0, -1)) : `${prefix}${path}` };
    }),
  );
}

/** One disk the guest sees: a blk device or one LUN of a scsi device. */
export interface GuestDiskConfig {
  /** Index in `config.devices`. */
  readonly device: number;
  /** scsi: the LUN's position in the device's `luns` and its address. */
  readonly lun?: { readonly index: number; readonly target: number; readonly lun: number };
  readonly medium: BlkDeviceConfig | ScsiLunConfig;
}

/**
 * The disks of a config, numbered as workloads name them (`disk: N`): every blk device and every
 * scsi LUN, in config order (a scsi device's LUNs in list order).
 */
export function guestDisks(config: Pick<VmConfig, 'devices'>): GuestDiskConfig[] {
  return config.devices.flatMap((d, device): GuestDiskConfig[] => {
    if (d.type === 'blk') return [{ device, medium: d }];
    if (d.type === 'scsi') return d.luns.map((l, index) => ({ device, lun: { index, target: l.target, lun: l.lun }, medium: l }));
    return [];
  });
}

/** Rules that span fields (valibot checks one field at a time). */
function checkCrossFields(config: VmConfig, prefix: string, inGroup: boolean): void {
  const failAt = (path: string, message: string): never => fail([{ message, path: `${prefix}${path}` }]);
  config.devices.forEach((device, index) => {
    if (device.type !== 'net') return;
    const backend = parseNetBackend(device.backend);
    if (typeof backend !== 'string' && backend.kind !== 'tap' && device.queues > 1) {
      failAt(`devices.${index}.queues`, `Expected 1 queue pair on a ${backend.kind} back-end (only a TAP has several) but received ${device.queues}`);
    }
  });
  const disks = guestDisks(config).map((d) => d.medium);
  const nets = config.devices.filter((d) => d.type === 'net');
  config.workloads.forEach((workload, index) => {
    const fail = (field: string, message: string): never => failAt(`workloads.${index}.${field}`, message);
    if (workload.type === 'verify' || workload.type === 'bench') {
      const disk = disks[workload.disk];
      if (disk === undefined) fail('disk', `Expected a disk number (blk devices and scsi LUNs) below ${disks.length} but received ${workload.disk}`);
      if (workload.type === 'verify' && disk!.readOnly) fail('disk', 'Expected a writable disk for verify but the disk is read-only');
      if (workload.type === 'bench' && disk!.readOnly && workload.rw !== 'read' && workload.rw !== 'randread') {
        fail('rw', `Expected read or randread on a read-only disk but received "${workload.rw}"`);
      }
      if (workload.type === 'bench' && workload.iodepth * workload.numjobs > config.queueSize * 16) {
        fail('iodepth', `Expected iodepth*numjobs <= ${config.queueSize * 16} but received ${workload.iodepth * workload.numjobs}`);
      }
    }
    if (workload.type === 'ping' || workload.type === 'udp-echo' || workload.type === 'net-bench') {
      const net = nets[workload.net];
      if (net === undefined) fail('net', `Expected a net device number below ${nets.length} but received ${workload.net}`);
      // No IP fragmentation in the model guest: every datagram fits the MTU.
      const limit = workload.type === 'net-bench' ? net!.mtu : net!.mtu - 28;
      if (workload.size > limit) fail('size', `Expected a size of at most ${limit} bytes (MTU ${net!.mtu}, no fragmentation) but received ${workload.size}`);
      if (workload.peer === undefined && !inGroup) fail('peer', 'Expected "peer" (an IPv4 address): there is no other VM in this run to default to');
      const own = parseIpv4Cidr(net!.ip);
      if (workload.peer !== undefined && typeof own !== 'string' && parseIpv4Address(workload.peer) === own.address) {
        fail('peer', `Expected another host's address but received the guest's own (${formatIpv4Address(own.address)})`);
      }
    }
    if (workload.type === 'console' && !config.devices.some((d) => d.type === 'console')) fail('type', 'Expected a console device for the console workload');
    if (workload.type === 'rng' && !config.devices.some((d) => d.type === 'rng')) fail('type', 'Expected an rng device for the rng workload');
  });
}

/** The net devices of a config in net-number order, with their config.devices index. */
export function netDevices(config: Pick<VmConfig, 'devices'>): { readonly device: number; readonly config: NetDeviceConfig }[] {
  return config.devices.flatMap((d, device) => (d.type === 'net' ? [{ device, config: d }] : []));
}
