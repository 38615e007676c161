import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { VmConfig } from '../config/schema.js';
import { createImage } from '../engine/images.js';
import { VmmError } from '../errors.js';
import { startServe, type ServeHandle } from '../serve/serve.js';
import { DEFAULT_GUEST_SCRIPT } from './default-script.js';
import { defaultGuest } from './default-guest.js';
import { ExitStatusScanner } from './exit-status.js';
import { findProgram } from './find-program.js';
import { qemuArgs } from './qemu-args.js';
import { planQemuDevices } from './serve-specs.js';

/** `vmm run --engine qemu` settings besides the VM config. */
export interface QemuRunOptions {
  /** Kernel image; default: the one tools/guest builds. */
  readonly kernel?: string;
  /** Initramfs; default: tools/guest's when the kernel is the default one too. */
  readonly initrd?: string;
  /** Extra kernel command line. */
  readonly append?: string;
  /** A shell script file the guest runs; default: {@link DEFAULT_GUEST_SCRIPT}. */
  readonly script?: string;
  /** The QEMU binary (default `qemu-system-x86_64` on $PATH). */
  readonly qemu?: string;
  /** Receives the guest's serial console as it arrives. */
  readonly onConsole: (chunk: string) => void;
  /** Engine and `vmm serve` progress lines (stderr). */
  readonly log: (line: string) => void;
  /** Aborting stops QEMU, then the embedded serve (images flushed); the run ends with INTERRUPTED. */
  readonly signal?: AbortSignal;
}

interface QemuExit {
  readonly status: number | null;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly aborted: boolean;
}

/**
 * Boots a real Linux guest: QEMU (TCG) with shared memfd RAM and every device of the config served
 * over vhost-user by an embedded `vmm serve` (sockets in a temporary directory). The guest runs the
 * script and reports `VT-EXIT=<status>`; that status is returned. The embedded serve is shut down
 * (connections ended, images flushed and closed) on every path: success, failure, timeout, abort.
 */
export async function runQemu(config: VmConfig, options: QemuRunOptions): Promise<number> {
  if (config.workloads.length > 0) {
    throw new VmmError('INVALID_CONFIG', 'invalid config: workloads run in the model guest only; with --engine qemu the Linux guest runs --script → at workloads', { field: 'workloads' });
  }
  const qemu = findProgram(options.qemu ?? 'qemu-system-x86_64');
  if (qemu === undefined) {
    throw new VmmError('QEMU_MISSING', `${options.qemu ?? 'qemu-system-x86_64'} was not found on PATH (Debian: apt-get install qemu-system-x86)`);
  }
  let script = DEFAULT_GUEST_SCRIPT;
  if (options.script !== undefined) {
    try {
      script = await readFile(options.script, 'utf8');
    } catch (error) {
      throw new VmmError('INVALID_OPTION', `--script: cannot read ${options.script}: ${(error as Error).message}`, { path: options.script }, { cause: error });
    }
  }
  let kernel = options.kernel;
  let initrd = options.initrd;
  if (kernel === undefined) {
    const guest = await defaultGuest();
    kernel = guest.kernel;
    initrd ??= guest.initrd;
  }
  if (options.signal?.aborted === true) throw new VmmError('INTERRUPTED', 'interrupted before QEMU started');

  const dir = await mkdtemp(path.join(tmpdir(), 'vmm-qemu-'));
  let serve: ServeHandle | undefined;
  try {
    const plan = planQemuDevices(config, dir);
    for (const note of plan.notes) options.log(`vmm: ${note}`);
    for (const image of plan.scratchImages) await createImage(image.path, image.format, image.size);
    const scriptFile = path.join(dir, 'script.sh');
    await writeFile(scriptFile, script);
    if (plan.specs.length > 0) serve = await startServe(plan.specs, (line) => options.log(`vmm serve: ${line}`));
    const args = qemuArgs({ kernel, initrd, append: options.append, memory: config.memory, vcpus: config.vcpus, devices: plan.specs, scriptFile });
    options.log(`vmm: ${qemu} (TCG) with ${plan.specs.length} vhost-user device(s); the guest's serial console follows`);
    const exit = await runQemuProcess(qemu, args, config.timeout, options);
    if (exit.aborted) throw new VmmError('INTERRUPTED', 'interrupted: QEMU stopped, images flushed and closed');
    if (exit.timedOut) throw new VmmError('TIMEOUT', `the Linux guest did not finish in ${config.timeout / 1000} s; QEMU was killed`);
    if (exit.status === null) {
      const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      throw new VmmError('NO_GUEST_STATUS', `QEMU ${how} and the guest reported no VT-EXIT status (its console is above)`);
    }
    return exit.status;
  } finally {
    if (serve !== undefined) await serve.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}

function runQemuProcess(qemu: string, args: readonly string[], timeoutMs: number, options: QemuRunOptions): Promise<QemuExit> {
  return new Promise<QemuExit>((resolve, reject) => {
    // Its own process group: Ctrl-C reaches vmm, which stops QEMU and then the serve, in that order.
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const scanner = new ExitStatusScanner();
    let timedOut = false;
    let aborted = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      scanner.push(chunk);
      options.onConsole(chunk);
    });
    child.stderr.on('data', (chunk: string) => options.log(chunk.trimEnd()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGTERM');
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted === true) onAbort();
    child.on('error', (error) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(new VmmError('QEMU_MISSING', `cannot start ${qemu}: ${error.message}`, {}, { cause: error }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ status: scanner.status, code, signal, timedOut, aborted });
    });
  });
}
