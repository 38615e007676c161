import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFlags, type ConfigFlags } from '../config/flags.js';
import { parseVmConfig, type VmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import { createImage } from '../engine/images.js';
import { runVm } from '../engine/run-vm.js';
import { formatReport, type RunReport } from '../report.js';
import { DEFAULT_DISK_SIZE, defaultDevices, defaultWorkloads } from './default-run.js';
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
export async function runCommand(options: RunCommandOptions, print: (text: string) => void): Promise<RunReport> {
  const base = options.config === undefined ? {} : await readConfigFile(options.config);
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
