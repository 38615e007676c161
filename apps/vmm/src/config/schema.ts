import * as v from 'valibot';
import { VmmError } from '../errors.js';
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

const DeviceSchema = v.variant('type', [
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

const WorkloadSchema = v.variant('type', [
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
export type ScsiLunConfig = ScsiDeviceConfig['luns'][number];
export type WorkloadConfig = VmConfig['workloads'][number];
export type VerifyWorkloadConfig = Extract<WorkloadConfig, { type: 'verify' }>;
export type BenchWorkloadConfig = Extract<WorkloadConfig, { type: 'bench' }>;

/**
 * Validates a config. Nothing is applied here: the result is a fresh, frozen-by-convention
 * object, and on any error nothing has been created yet. Throws VmmError INVALID_CONFIG whose
 * message lists every issue with its field (`... → at devices.0.format`).
 */
export function parseVmConfig(input: unknown): VmConfig {
  const result = v.safeParse(VmConfigSchema, input);
  if (result.success) {
    checkCrossFields(result.output);
    return result.output;
  }
  const first = result.issues[0];
  const field = first === undefined ? undefined : v.getDotPath(first) ?? undefined;
  const lines = result.issues.map((issue) => {
    const path = v.getDotPath(issue);
    return path === null ? issue.message : `${issue.message} → at ${path}`;
  });
  throw new VmmError('INVALID_CONFIG', `invalid config: ${lines.join('; ')}`, field === undefined ? {} : { field });
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
function checkCrossFields(config: VmConfig): void {
  const disks = guestDisks(config).map((d) => d.medium);
  config.workloads.forEach((workload, index) => {
    const fail = (field: string, message: string): never => {
      const path = `workloads.${index}.${field}`;
      throw new VmmError('INVALID_CONFIG', `invalid config: ${message} → at ${path}`, { field: path });
    };
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
    if (workload.type === 'console' && !config.devices.some((d) => d.type === 'console')) fail('type', 'Expected a console device for the console workload');
    if (workload.type === 'rng' && !config.devices.some((d) => d.type === 'rng')) fail('type', 'Expected an rng device for the rng workload');
  });
}
