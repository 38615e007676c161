import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GuestImage } from './build.js';

export interface RunGuestOptions {
  readonly guest: GuestImage;
  /** Shell script run by the guest's /init (busybox sh -e). Its exit status is the result. */
  readonly script: string;
  /** Extra QEMU arguments: devices, netdevs, memory backends. */
  readonly qemuArgs?: readonly string[];
  /** vCPUs (default 1). blk-mq maps queues to CPUs: a multiqueue test needs as many vCPUs as queues. */
  readonly smp?: number;
  /** Guest RAM (QEMU `-m`), default 512M. Must match a memory backend given in qemuArgs. */
  readonly memory?: string;
  readonly qemu?: string;
  /** Kill QEMU after this long (default 180 s). */
  readonly timeoutMs?: number;
  /** Extra kernel command line. */
  readonly append?: string;
  /** Aborting kills QEMU at once (SIGKILL): a front-end dying mid-I/O. */
  readonly signal?: AbortSignal;
  /** Receives the serial console as it arrives (e.g. process.stdout.write). */
  readonly onOutput?: (chunk: string) => void;
}

export interface GuestResult {
  /** The script's exit status, or null when the guest never reported one (crash, timeout). */
  readonly status: number | null;
  /** Everything the guest printed on its serial console. */
  readonly output: string;
  /** Wall-clock ms from starting QEMU to the guest's /init running (VT-BOOTED). */
  readonly bootMs: number | null;
  readonly timedOut: boolean;
}

/** The kernel command line is at most 2048 bytes on x86; longer scripts travel through fw_cfg. */
const MAX_INLINE_SCRIPT = 1200;

/**
 * Boots the guest under QEMU TCG (`-cpu qemu64`; /dev/kvm on these machines cannot run a Linux
 * guest), runs `script`, and resolves with its exit status and console output.
 */
export async function runGuest(options: RunGuestOptions): Promise<GuestResult> {
  const qemu = options.qemu ?? 'qemu-system-x86_64';
  const scratch = await mkdtemp(path.join(tmpdir(), 'vt-guest-'));
  try {
    const encoded = Buffer.from(options.script).toString('base64');
    // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic
    // ("IO-APIC + timer doesn't work"); the check is meaningless for an emulated timer.
    const append = ['console=ttyS0', 'panic=-1', 'loglevel=4', 'rdinit=/init', 'no_timer_check', options.append ?? ''];
    const args = [
      '-machine', 'pc,accel=tcg', '-cpu', 'qemu64', '-m', options.memory ?? '512M', '-smp', String(options.smp ?? 1),
      '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-nodefaults',
      '-kernel', options.guest.kernel, '-initrd', options.guest.initrd,
    ];
    if (encoded.length <= MAX_INLINE_SCRIPT) {
      append.push(`vt.script=${encoded}`);
    } else {
      const file = path.join(scratch, 'script.sh');
      await writeFile(file, options.script);
      args.push('-fw_cfg', `name=opt/virtio-ts/script,file=${file}`);
    }
    args.push('-append', append.filter(Boolean).join(' '), ...(options.qemuArgs ?? []));
    const started = Date.now();
    return await new Promise<GuestResult>((resolve, reject) => {
      const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      let bootMs: number | null = null;
      let timedOut = false;
      const onChunk = (chunk: Buffer): void => {
        const text = chunk.toString('utf8');
        output += text;
        if (bootMs === null && output.includes('VT-BOOTED')) bootMs = Date.now() - started;
        options.onOutput?.(text);
      };
      child.stdout.on('data', onChunk);
      child.stderr.on('data', onChunk);
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, options.timeoutMs ?? 180_000);
      options.signal?.addEventListener('abort', () => child.kill('SIGKILL'), { once: true });
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', () => {
        clearTimeout(timer);
        const m = /VT-EXIT=(\d+)/.exec(output);
        resolve({ status: m ? Number(m[1]) : null, output, bootMs, timedOut });
      });
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
