import { configFromFlags } from '../config/flags.js';
import { parseVmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import { DEFAULT_DISK_SIZE } from '../cli/default-run.js';
import { readConfigFile, type RunCommandOptions } from '../cli/run-command.js';
import { runQemu } from './run-qemu.js';

/** Guest RAM of the qemu engine when the config sets none. */
export const QEMU_DEFAULT_MEMORY = '512M';

/** `vmm run` flags of the qemu engine. */
export interface QemuFlags {
  readonly kernel?: string;
  readonly initrd?: string;
  readonly append?: string;
  readonly script?: string;
}

/**
 * `vmm run` with `engine: "qemu"` (from `--engine qemu` or the config file): boots the Linux guest
 * with the config's devices over vhost-user, streams its serial console to `console`, and resolves
 * with the guest script's exit status. Resolves undefined when the config selects the model engine
 * (the caller then runs it). SIGINT/SIGTERM stop QEMU and the embedded serve, then INTERRUPTED.
 */
export async function qemuRunCommand(options: RunCommandOptions & QemuFlags, console: (chunk: string) => void, log: (line: string) => void): Promise<number | undefined> {
  const base = options.config === undefined ? {} : await readConfigFile(options.config);
  const raw = configFromFlags(options, base);
  const qemuOnly = (['kernel', 'initrd', 'append', 'script'] as const).filter((k) => options[k] !== undefined);
  if (raw.engine !== 'qemu') {
    // The model engine (or an invalid engine, which runCommand's validation names).
    if (qemuOnly.length > 0) throw new VmmError('INVALID_OPTION', `--${qemuOnly[0]} needs --engine qemu`, { field: `--${qemuOnly[0]}` });
    return undefined;
  }
  // Without devices: a temporary 64 MiB qcow2 disk and an rng (a console cannot be attached, see planQemuDevices).
  if (raw.devices === undefined) raw.devices = [{ type: 'blk', size: DEFAULT_DISK_SIZE, format: 'qcow2' }, { type: 'rng' }];
  // The model engine's 256 MiB default is too small for a Linux guest that unpacks tools/guest's ~90 MiB initramfs.
  if (raw.memory === undefined) raw.memory = QEMU_DEFAULT_MEMORY;
  const config = parseVmConfig(raw);
  if (options.json === true) throw new VmmError('INVALID_OPTION', '--json: the qemu engine prints the guest console, not a report', { field: '--json' });
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    return await runQemu(config, { ...options, onConsole: console, log, signal: controller.signal });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
