import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from '../measure.js';
import { row, type Row } from '../report.js';
import type { Suite, SuiteOptions } from '../suite.js';
import { FIO_JOBS, fioScript, parseFioResult, type FioResult } from './fio.js';

/** The built `vmm` CLI and guest tool (`pnpm bench` builds the whole workspace first). */
const VMM_MAIN = fileURLToPath(new URL('../../../../apps/vmm/dist/main.js', import.meta.url));
const GUEST_MODULE = new URL('../../../guest/dist/index.js', import.meta.url).href;

/** The part of @virtio-ts/guest this suite uses (loaded from its build, like the vmm CLI). */
interface GuestTool {
  buildGuest(): Promise<{ kernel: string; initrd: string }>;
  runGuest(options: {
    guest: { kernel: string; initrd: string };
    script: string;
    qemuArgs?: readonly string[];
    smp?: number;
    memory?: string;
    timeoutMs?: number;
    onOutput?: (chunk: string) => void;
  }): Promise<{ status: number | null; output: string; bootMs: number | null; timedOut: boolean }>;
}

type Format = 'raw' | 'qcow2';
type Side = 'ours' | 'qsd';

/** The disk: 512 MiB, of which fio touches the first 256 MiB, filled with random data beforehand. */
const DISK_BYTES = 512 * 2 ** 20;
const SPAN_BYTES = 256 * 2 ** 20;
const QUEUES = 2;
const MEMORY = '512M';
const MEMFD = ['-object', `memory-backend-memfd,id=mem,size=${MEMORY},share=on`, '-numa', 'node,memdev=mem'];

function missingPeers(): string | undefined {
  for (const tool of ['qemu-system-x86_64', 'qemu-storage-daemon', 'qemu-img']) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error !== undefined || r.status !== 0) return `${tool} not found (bash scripts/install-peers.sh)`;
  }
  if (!existsSync('/usr/bin/fio')) return 'fio not found (the guest copies the host\'s /usr/bin/fio)';
  if (!existsSync(VMM_MAIN)) return `vmm is not built (${VMM_MAIN}): pnpm --filter @virtio-ts/vmm... build`;
  return undefined;
}

/** A started device server; `stop` sends SIGTERM and waits for it to exit (images flushed). */
interface Server {
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

async function waitFor(what: string, ready: () => boolean, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!ready()) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not start: ${output().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Developer knobs (not options: a benchmark run for the figures uses none of them):
 * `BENCH_LINUX_NODE_ARGS` — extra node flags for our daemon, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`
 * (a profile per thread, device thread included); `BENCH_LINUX_FORMATS` — `raw`, `qcow2` or both
 * (comma-separated); `BENCH_LINUX_SIDES` — `ours`, `qsd` or both; `BENCH_LINUX_BOOT=0` skips the
 * boot rows.
 */
const NODE_ARGS = (process.env.BENCH_LINUX_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
function listEnv<T extends string>(name: string, all: readonly T[]): T[] {
  const value = process.env[name];
  if (value === undefined || value === '') return [...all];
  const picked = value.split(',').map((v) => v.trim());
  for (const v of picked) if (!all.includes(v as T)) throw new Error(`${name}: '${v}' is not one of ${all.join(', ')}`);
  return picked as T[];
}

/** Our `vmm serve --blk` on `socket`, in its own process like qemu-storage-daemon. */
async function startOurs(image: string, format: Format, socket: string, log: (line: string) => void = () => undefined): Promise<Server> {
  const child = spawn(process.execPath, [...NODE_ARGS, VMM_MAIN, 'serve', '--blk', `id=d0,path=${image},format=${format},socket=${socket},queues=${QUEUES}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor('vmm serve', () => output.includes('device(s) ready'), child, () => output);
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
      // The daemon's own account of the connection: messages and kicks per queue.
      for (const line of output.split('\n')) if (line.includes('kicks per queue')) log(`  vmm serve: ${line.trim()}`);
    },
  };
}

/** qemu-storage-daemon's vhost-user-blk export of the same image. */
async function startQsd(image: string, format: Format, socket: string): Promise<Server> {
  const blockdevs = ['--blockdev', `driver=file,node-name=file0,filename=${image}`];
  if (format === 'qcow2') blockdevs.push('--blockdev', 'driver=qcow2,node-name=disk0,file=file0');
  const node = format === 'qcow2' ? 'disk0' : 'file0';
  const child = spawn('qemu-storage-daemon', [...blockdevs, '--export', `type=vhost-user-blk,id=exp0,node-name=${node},addr.type=unix,addr.path=${socket},writable=on,num-queues=${QUEUES}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor('qemu-storage-daemon', () => existsSync(socket), child, () => output);
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}

/** A raw image whose first SPAN_BYTES hold random data (so reads are real reads), and its qcow2 copy. */
async function makeImages(dir: string): Promise<Record<Format, string>> {
  const raw = join(dir, 'disk.raw');
  const file = await open(raw, 'w');
  try {
    const chunk = Buffer.alloc(2 ** 20);
    for (let offset = 0; offset < SPAN_BYTES; offset += chunk.length) await file.write(randomFillSync(chunk), 0, chunk.length, offset);
    await file.truncate(DISK_BYTES);
  } finally {
    await file.close();
  }
  const qcow2 = join(dir, 'disk.qcow2');
  const r = spawnSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img convert failed: ${r.stderr}`);
  return { raw, qcow2 };
}

export const suite: Suite = {
  name: 'linux',
  description:
    'linux: a Linux guest (QEMU TCG, 2 vCPUs) running fio on /dev/vda (vhost-user-blk, 2 queues, 2 fio jobs pinned one per vCPU, O_DIRECT, libaio); ' +
    'peer = qemu-storage-daemon exporting the same image. Boot row: ours = that guest on vmm serve (vhost-user-blk) vs QEMU\'s built-in virtio-blk-pci, time from starting QEMU to the guest script (modules loaded, devices probed)',
  peerTitle: 'qemu',
  defaultRepeats: 2,
  async run(options: SuiteOptions): Promise<Row[]> {
    const missing = missingPeers();
    if (missing !== undefined) throw Object.assign(new Error(`linux: ${missing}`), { code: 'PEER_MISSING' });
    const runtime = options.runtimeSeconds ?? 5;
    const tool = (await import(GUEST_MODULE)) as GuestTool;
    options.log('building the guest (cached after the first time)');
    const guest = await tool.buildGuest();
    const dir = await mkdtemp(join(tmpdir(), 'bench-linux-'));
    try {
      options.log(`writing ${SPAN_BYTES / 2 ** 20} MiB of random data into the raw image and converting it to qcow2`);
      const images = await makeImages(dir);
      const script = fioScript(FIO_JOBS, runtime, `${SPAN_BYTES / 2 ** 20}M`);

      const fioBoot = async (side: Side, format: Format): Promise<FioResult[]> => {
        const socket = join(dir, `${side}-${format}.sock`);
        const server = side === 'ours' ? await startOurs(images[format], format, socket, options.log) : await startQsd(images[format], format, socket);
        try {
          const result = await tool.runGuest({
            guest,
            script,
            smp: 2,
            memory: MEMORY,
            timeoutMs: (FIO_JOBS.length * (runtime + 1) + 300) * 1000,
            qemuArgs: [...MEMFD, '-chardev', `socket,id=blk0,path=${socket}`, '-device', `vhost-user-blk-pci,chardev=blk0,num-queues=${QUEUES}`],
          });
          if (result.status !== 0) throw new Error(`linux: the ${side} ${format} guest failed (status ${result.status}):\n${result.output.slice(-3000)}`);
          return FIO_JOBS.map((_, i) => parseFioResult(result.output, i));
        } finally {
          await server.stop();
        }
      };

      /** Milliseconds from starting QEMU to the guest's script (VT-RUN: modules loaded, devices probed). */
      const bootToScript = async (side: 'ours' | 'builtin'): Promise<number> => {
        const socket = join(dir, `boot.sock`);
        const server = side === 'ours' ? await startOurs(images.qcow2, 'qcow2', socket) : undefined;
        try {
          const started = performance.now();
          let ms: number | null = null;
          let tail = ''; // the marker may be split across chunks
          const device =
            side === 'ours'
              ? [...MEMFD, '-chardev', `socket,id=blk0,path=${socket}`, '-device', `vhost-user-blk-pci,chardev=blk0,num-queues=${QUEUES}`]
              : ['-drive', `file=${images.qcow2},if=none,id=d0,format=qcow2`, '-device', `virtio-blk-pci,drive=d0,num-queues=${QUEUES}`];
          const result = await tool.runGuest({
            guest,
            script: 'test -b /dev/vda',
            smp: 2,
            memory: MEMORY,
            timeoutMs: 300_000,
            qemuArgs: device,
            onOutput: (chunk) => {
              if (ms !== null) return;
              tail = (tail + chunk).slice(-64);
              if (tail.includes('VT-RUN')) ms = performance.now() - started;
            },
          });
          if (result.status !== 0 || ms === null) throw new Error(`linux: the ${side} boot failed (status ${result.status}):\n${result.output.slice(-3000)}`);
          return ms;
        } finally {
          await server?.stop();
        }
      };

      const samples = new Map<string, { ours: number[]; peer: number[] }>();
      const add = (key: string, which: 'ours' | 'peer', value: number): void => {
        const entry = samples.get(key) ?? { ours: [], peer: [] };
        entry[which].push(value);
        samples.set(key, entry);
      };
      const formats = listEnv<Format>('BENCH_LINUX_FORMATS', ['raw', 'qcow2']);
      const sides = listEnv<Side>('BENCH_LINUX_SIDES', ['ours', 'qsd']);
      const boots = process.env.BENCH_LINUX_BOOT !== '0';
      for (let r = 0; r < options.repeats; r++) {
        for (const format of formats) {
          // Alternate which side boots first, so neither always runs on the warmer page cache.
          const order: Side[] = (r % 2 === 0 ? (['ours', 'qsd'] as const) : (['qsd', 'ours'] as const)).filter((s) => sides.includes(s));
          for (const side of order) {
            options.log(`repeat ${r + 1}/${options.repeats}: ${format}, ${side === 'ours' ? 'vmm serve' : 'qemu-storage-daemon'}: ${FIO_JOBS.length} fio jobs of ${runtime} s`);
            const results = await fioBoot(side, format);
            results.forEach((result, i) => {
              const job = FIO_JOBS[i]!;
              add(`${format}, ${job.name}: IOPS`, side === 'ours' ? 'ours' : 'peer', result.iops);
              add(`${format}, ${job.name}: bandwidth`, side === 'ours' ? 'ours' : 'peer', result.bandwidth / 2 ** 20);
              options.log(`  ${job.name}: ${result.iops.toFixed(0)} IOPS, ${(result.bandwidth / 2 ** 20).toFixed(1)} MiB/s`);
            });
          }
        }
        const bootOrder: ('ours' | 'builtin')[] = !boots ? [] : r % 2 === 0 ? ['ours', 'builtin'] : ['builtin', 'ours'];
        for (const side of bootOrder) {
          const ms = await bootToScript(side);
          options.log(`repeat ${r + 1}/${options.repeats}: boot to script with ${side === 'ours' ? 'vmm serve (vhost-user-blk)' : 'QEMU virtio-blk-pci'}: ${ms.toFixed(0)} ms`);
          // As a rate, so that higher is better like every other row.
          add('boot to the guest script, qcow2 disk (60 s / boot time)', side === 'ours' ? 'ours' : 'peer', 60_000 / ms);
        }
      }
      const rows: Row[] = [];
      for (const [name, { ours, peer }] of samples) {
        const unit = name.endsWith('IOPS') ? 'IOPS' : name.endsWith('bandwidth') ? 'MiB/s' : 'boots/min';
        rows.push(row(name, unit, ours.length > 0 ? median(ours) : Number.NaN, peer.length > 0 ? median(peer) : null));
      }
      return rows;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
