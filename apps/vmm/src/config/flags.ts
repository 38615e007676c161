import { VmmError } from '../errors.js';
import { parseOptionList, type OptionList } from './option-list.js';

/** The `vmm run` flags that describe a VM, as commander hands them over (strings, repeatables as arrays). */
export interface ConfigFlags {
  readonly engine?: string;
  readonly memory?: string;
  readonly vcpus?: string;
  readonly transport?: string;
  readonly ring?: string;
  readonly eventIdx?: string;
  readonly indirect?: string;
  readonly queueSize?: string;
  readonly dispatch?: string;
  readonly timeout?: string;
  /** Each `--blk` option list. */
  readonly blk?: readonly string[];
  /** Each `--scsi` option list (a controller with one LUN). */
  readonly scsi?: readonly string[];
  /** Each `--net` option list. */
  readonly net?: readonly string[];
  /** `--vms N`: run N copies of the VM on this process (not part of one VM's config). */
  readonly vms?: string;
  /** How many times `--rng` was given. */
  readonly rng?: number;
  /** How many times `--console` was given. */
  readonly console?: number;
  /** `--console-backend`: the host side of every `--console` (echo, stdio, pty, socket:PATH). */
  readonly consoleBackend?: string;
  /** Each `--workload` option list. */
  readonly workload?: readonly string[];
}

/** Option-list keys spelled differently on the command line (QEMU's spelling) and in JSON. */
const KEY_NAMES: Readonly<Record<string, string>> = { readonly: 'readOnly', 'event-idx': 'eventIdx', 'queue-size': 'queueSize' };
/** Keys whose values are integers in the JSON config. */
const INTEGER_KEYS = new Set(['vcpus', 'queueSize', 'queues', 'iodepth', 'numjobs', 'disk', 'seed', 'rwmixread', 'target', 'lun', 'mtu', 'net', 'count', 'size', 'port']);
/** Keys whose values are booleans in the JSON config. */
const BOOLEAN_KEYS = new Set(['readOnly', 'eventIdx', 'indirect']);

/**
 * Turns one flag value into the JSON value it stands for: `on`/`off` → boolean and digits →
 * integer for the keys that hold them. Anything else stays a string, so that validation names
 * the field with the text the user typed (`Expected boolean but received "maybe"`).
 */
function toJsonValue(key: string, text: string): unknown {
  if (BOOLEAN_KEYS.has(key)) {
    if (['on', 'true', 'yes'].includes(text)) return true;
    if (['off', 'false', 'no'].includes(text)) return false;
    return text;
  }
  if (INTEGER_KEYS.has(key) && /^-?\d{1,15}$/.test(text)) return Number(text);
  return text;
}

function objectFromOptions(type: string, options: OptionList, what: string): Record<string, unknown> {
  if (options.has('help')) {
    throw new VmmError('INVALID_OPTION', `${what} takes key=value options; see \`vmm run --help\``);
  }
  const result: Record<string, unknown> = { type };
  for (const [rawKey, text] of options) {
    const key = KEY_NAMES[rawKey] ?? rawKey;
    result[key] = toJsonValue(key, text);
  }
  return result;
}

/** `--blk path=IMG,format=qcow2,readonly=on,queues=2,cache=writeback` (implied key: path). */
export function blkFromFlag(text: string): Record<string, unknown> {
  return objectFromOptions('blk', parseOptionList(text, 'path'), '--blk');
}

/**
 * `--scsi path=IMG,format=qcow2,queues=2,target=0,lun=0` (implied key: path): a virtio-scsi
 * controller with one LUN. `queues` is the controller's; every other key is the LUN's. (A JSON
 * config lists several LUNs under one controller.)
 */
export function scsiFromFlag(text: string): Record<string, unknown> {
  const { type, queues, ...lun } = objectFromOptions('scsi', parseOptionList(text, 'path'), '--scsi');
  return queues === undefined ? { type, luns: [lun] } : { type, queues, luns: [lun] };
}

/**
 * `--net switch:lan0,mac=52:54:00:12:34:56,ip=10.0.0.1/24,mtu=1500,queues=1` (implied key:
 * backend). `--net stream:/run/n.sock,server=on`: `server` belongs to the stream back-end.
 */
export function netFromFlag(text: string): Record<string, unknown> {
  const options = parseOptionList(text, 'backend');
  const server = options.get('server');
  const rest = new Map(options);
  rest.delete('server');
  const result = objectFromOptions('net', rest, '--net');
  if (server !== undefined) result.backend = `${typeof result.backend === 'string' ? result.backend : ''},server=${server}`;
  return result;
}

/** `--workload bench,rw=randread,bs=4k,iodepth=32` (implied key: type). */
export function workloadFromFlag(text: string): Record<string, unknown> {
  const options = parseOptionList(text, 'type');
  const type = options.get('type');
  const rest = new Map(options);
  rest.delete('type');
  const result = objectFromOptions(type ?? '', rest, '--workload');
  if (type === undefined) delete result.type;
  return result;
}

/**
 * Builds the raw (unvalidated) JSON config the flags describe, on top of `base` (the parsed
 * `--config` file, or `{}`): scalar flags replace the file's fields; any device flag replaces
 * the file's device list, any `--workload` its workload list. Validate the result with
 * `parseVmConfig`; the same schema checks a JSON file and flags, so both name the same fields.
 */
export function configFromFlags(flags: ConfigFlags, base: unknown = {}): Record<string, unknown> {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) {
    throw new VmmError('INVALID_CONFIG', 'invalid config: Expected an object at the top of the config file');
  }
  const config: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  const scalars: [keyof ConfigFlags, string][] = [
    ['engine', 'engine'],
    ['memory', 'memory'],
    ['vcpus', 'vcpus'],
    ['transport', 'transport'],
    ['ring', 'ring'],
    ['eventIdx', 'eventIdx'],
    ['indirect', 'indirect'],
    ['queueSize', 'queueSize'],
    ['dispatch', 'dispatch'],
    ['timeout', 'timeout'],
  ];
  for (const [flag, key] of scalars) {
    const text = flags[flag];
    if (typeof text === 'string') config[key] = toJsonValue(key, text);
  }
  const devices: Record<string, unknown>[] = [];
  for (const text of flags.blk ?? []) devices.push(blkFromFlag(text));
  for (const text of flags.scsi ?? []) devices.push(scsiFromFlag(text));
  for (const text of flags.net ?? []) devices.push(netFromFlag(text));
  for (let i = 0; i < (flags.rng ?? 0); i++) devices.push({ type: 'rng' });
  for (let i = 0; i < (flags.console ?? 0); i++) devices.push(flags.consoleBackend === undefined ? { type: 'console' } : { type: 'console', backend: flags.consoleBackend });
  if (devices.length > 0) config.devices = devices;
  if (flags.workload !== undefined && flags.workload.length > 0) config.workloads = flags.workload.map(workloadFromFlag);
  return config;
}
