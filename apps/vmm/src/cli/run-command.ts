import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFlags, type ConfigFlags } from '../config/flags.js';
import { isGroupInput, MAX_VMS, parseVmGroup, replicateVm, type VmGroupConfig } from '../config/group.js';
import { parseVmConfig, type VmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import { createImage } from '../engine/images.js';
import { runVmGroup, type GroupReport } from '../engine/run-group.js';
import { runVm } from '../engine/run-vm.js';
import { formatGroupReport, formatReport, type RunReport } from '../report.js';
import { DEFAULT_DISK_SIZE, defaultDevices, defaultGroupDevices, defaultWorkloads } from './default-run.js';
import { createProgress } from './progress.js';

/** `vmm run` options besides the VM description. */
export interface RunCommandOptions extends ConfigFlags {
  readonly config?: string;
  readonly json?: boolean;
  readonly progress?: boolean;
}

/** Reads and parses `--config FILE` (untrusted: any JSON error is INVALID_CONFIG, not a crash). */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new VmmError('INVALID_CONFIG', `cannot read config file: ${(error as Error).message}`, { path }, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new VmmError('INVALID_CONFIG', `config file is not JSON: ${(error as Error).message}`, { path }, { cause: error });
  }
}

/**
 * `vmm run`: builds the config from `--config` and the flags, validates all of it before anything
 * is created, fills the embedded default (a temporary qcow2 disk, rng, console; verify + a short
 * bench + console + rng) where the config names no devices or no workloads, runs the model guest
 * and prints the report. Returns the report; throws VmmError for every failure.
 */
export async function runCommand(options: RunCommandOptions, print: (text: string) => void): Promise<RunReport | GroupReport> {
  const base = options.config === undefined ? {} : await readConfigFile(options.config);
  const group = groupFromOptions(options, base);
  if (group !== undefined) return runGroupCommand(group, options, print);
  const raw = configFromFlags(options, base);
  const needsDefaultDisk = raw.devices === undefined;
  // Validate before creating anything: with a placeholder disk path when the default disk is used.
  let config: VmConfig = parseVmConfig(needsDefaultDisk ? { ...raw, devices: defaultDevices('default.qcow2') } : raw);
  if (raw.workloads === undefined) config = parseVmConfig({ ...raw, devices: needsDefaultDisk ? defaultDevices('default.qcow2') : raw.devices, workloads: defaultWorkloads(config.devices) });
  let temporary: string | undefined;
  try {
    if (needsDefaultDisk) {
      temporary = await mkdtemp(join(tmpdir(), 'vmm-'));
      const path = join(temporary, 'disk.qcow2');
      await createImage(path, 'qcow2', DEFAULT_DISK_SIZE);
      config = { ...config, devices: config.devices.map((d, i) => (i === 0 && d.type === 'blk' ? { ...d, path } : d)) };
    }
    const names = config.workloads.map((w) => w.type);
    const progress = createProgress(config.workloads.length, options.progress !== false && options.json !== true);
    let report: RunReport;
    try {
      report = await runVm(config, { onProgress: (workload, fraction) => progress.update(workload, fraction, names[workload] ?? '') });
    } finally {
      progress.stop();
    }
    print(options.json === true ? JSON.stringify(report, null, 2) : formatReport(report));
    return report;
  } finally {
    if (temporary !== undefined) await rm(temporary, { recursive: true, force: true });
  }
}

/** `--vms N` as a number (1 when absent); INVALID_OPTION for anything else. */
function vmCount(options: RunCommandOptions): number {
  if (options.vms === undefined) return 1;
  const count = /^\d{1,3}$/.test(options.vms) ? Number(options.vms) : NaN;
  if (!(count >= 1 && count <= MAX_VMS)) throw new VmmError('INVALID_OPTION', `--vms: expected a VM count in [1, ${MAX_VMS}] but received ${JSON.stringify(options.vms)}`, { field: 'vms' });
  return count;
}

/**
 * The multi-VM run the options describe, or undefined for a single VM: a config file with `vms`
 * (the flags apply to every VM), or `--vms N` (N copies of the VM the file and flags describe; a
 * copy without devices gets a net device on switch:lan0, and without workloads ping and udp-echo
 * to the next VM). Validated before anything is created.
 */
export function groupFromOptions(options: RunCommandOptions, base: unknown): VmGroupConfig | undefined {
  const count = vmCount(options);
  if (isGroupInput(base)) {
    if (options.vms !== undefined) throw new VmmError('INVALID_OPTION', '--vms: the config file already lists its VMs under "vms"', { field: 'vms' });
    if (!Array.isArray(base.vms)) return parseVmGroup(base); // names the bad field
    const vms = base.vms.map((vm: unknown, index) => withGroupDefaults(configFromFlags(options, vm), `vms.${index}.`));
    return parseVmGroup({ vms });
  }
  if (count === 1) return undefined;
  const raw = withGroupDefaults(configFromFlags(options, base), '');
  return { vms: replicateVm(parseVmConfig(raw, { inGroup: true }), count) };
}

/** A VM of a group without devices gets a net device on switch:lan0; without workloads, the defaults for its devices. */
function withGroupDefaults(raw: Record<string, unknown>, path: string): Record<string, unknown> {
  const devices = raw.devices ?? defaultGroupDevices();
  if (raw.workloads !== undefined) return { ...raw, devices };
  // The workloads depend on the devices: validate those first (a bad device is named as usual).
  const parsed = parseVmConfig({ ...raw, devices, workloads: [] }, { inGroup: true, path });
  return { ...raw, devices, workloads: defaultWorkloads(parsed.devices, true) };
}

async function runGroupCommand(group: VmGroupConfig, options: RunCommandOptions, print: (text: string) => void): Promise<GroupReport> {
  for (const vm of group.vms) {
    if (vm.engine !== 'model') throw new VmmError('INVALID_CONFIG', 'invalid config: Expected the model engine for a multi-VM run → at engine', { field: 'engine' });
  }
  const offsets = group.vms.map((_, i) => group.vms.slice(0, i).reduce((n, vm) => n + vm.workloads.length, 0));
  const total = group.vms.reduce((n, vm) => n + vm.workloads.length, 0);
  const names = group.vms.flatMap((vm, i) => vm.workloads.map((w) => `vm${i} ${w.type}`));
  const progress = createProgress(total, options.progress !== false && options.json !== true);
  let report: GroupReport;
  try {
    report = await runVmGroup(group, { onProgress: (vm, workload, fraction) => progress.update(offsets[vm]! + workload, fraction, names[offsets[vm]! + workload] ?? '') });
  } finally {
    progress.stop();
  }
  print(options.json === true ? JSON.stringify(report, null, 2) : formatGroupReport(report));
  return report;
}
