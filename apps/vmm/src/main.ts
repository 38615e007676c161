#!/usr/bin/env node
// `vmm`: the virtio-ts reference VMM. Prints `vmm: <message> [CODE]` for every error, never a stack.
import { Command, CommanderError } from 'commander';
import { describeError, VmmError } from './errors.js';
import { runCommand, type RunCommandOptions } from './cli/run-command.js';
import { serveCommand, type ServeCommandOptions } from './serve/serve-command.js';
import { qemuRunCommand, type QemuFlags } from './qemu/qemu-command.js';

/** The exit status of a run that has one of its own (the Linux guest's script under `--engine qemu`). */
let runStatus = 0;

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
const count = (_: unknown, previous = 0): number => previous + 1;

function program(): Command {
  const cli = new Command('vmm').description('The virtio-ts reference VMM').exitOverride().showSuggestionAfterError();
  cli
    .command('run', { isDefault: true })
    .description('Boot the model guest (vCPU worker threads driving our devices over virtio) and run workloads')
    .option('--config <file>', 'VM config as JSON (flags given too override its fields)')
    .option('--engine <model|qemu>', 'model: the model guest; qemu: a real Linux guest under QEMU (TCG), devices over vhost-user from an embedded `vmm serve`')
    .option('--kernel <file>', 'qemu engine: kernel image (default: the guest tools/guest builds)')
    .option('--initrd <file>', 'qemu engine: initramfs (its /init must run fw_cfg opt/virtio-ts/script and print VT-EXIT=<status>)')
    .option('--append <cmdline>', 'qemu engine: extra kernel command line')
    .option('--script <file>', 'qemu engine: shell script the guest runs; its exit status is vmm\'s (default: list the virtio devices)')
    .option('--memory <size>', 'guest RAM, e.g. 256M')
    .option('--vcpus <n>', 'vCPU worker threads')
    // Values are checked by the config schema (not commander's `choices`), so a bad flag and a bad
    // JSON field get the same message naming the field.
    .option('--transport <pci|mmio>', 'virtio transport')
    .option('--ring <split|packed>', 'virtqueue layout')
    .option('--event-idx <on|off>', 'offer VIRTIO_RING_F_EVENT_IDX')
    .option('--indirect <on|off>', 'offer VIRTIO_RING_F_INDIRECT_DESC')
    .option('--queue-size <n>', 'virtqueue size (a power of two)')
    .option('--dispatch <workers|inline>', 'vCPUs as worker threads, or inline with synchronous dispatch')
    .option('--timeout <duration>', 'abandon the run after this long (e.g. 600, 10m)')
    .option('--blk <options>', 'a virtio-blk disk: path=IMG,format=raw|qcow2,readonly=on,queues=N,cache=writeback|writethrough|none, or size=64M for a memory disk (repeatable)', collect)
    .option('--scsi <options>', 'a virtio-scsi controller with one LUN: path=IMG,format=raw|qcow2,readonly=on,cache=...,target=T,lun=L,queues=N, or size=64M for a memory disk (repeatable; a JSON config lists several LUNs per controller)', collect)
    .option('--net <options>', 'a virtio-net device: switch:NAME|tap:IFNAME|stream:PATH[,server=on],mac=52:54:00:12:34:56,ip=10.0.0.1/24,mtu=1500,queues=N (repeatable)', collect)
    .option('--vms <n>', 'run N copies of this VM in one process (MAC and IP moved up by the copy number), their net devices on shared in-process switches')
    .option('--rng', 'a virtio-rng device (repeatable)', count)
    .option('--console', 'a virtio-console device (repeatable)', count)
    .option('--console-backend <spec>', 'host side of the consoles: echo (default), stdio, pty, socket:PATH')
    .option('--workload <options>', 'verify|bench|console|rng|ping|udp-echo|net-bench with key=value options, e.g. bench,rw=randread,bs=4k,iodepth=32,numjobs=1,runtime=5 or ping,peer=10.0.0.2,count=4 (repeatable)', collect)
    .option('--json', 'print the report as JSON')
    .option('--no-progress', 'no progress bar')
    .action(async (options: RunCommandOptions & QemuFlags) => {
      const status = await qemuRunCommand(options, (chunk) => void process.stdout.write(chunk), (line) => void process.stderr.write(`${line}\n`));
      if (status !== undefined) {
        runStatus = status;
        return;
      }
      await runCommand(options, (text) => process.stdout.write(`${text}\n`));
    });
  cli
    .command('serve')
    .description('Serve devices to a VMM over vhost-user, like qemu-storage-daemon (one socket per device)')
    .option('--blk <options>', 'id=ID,path=IMG,format=raw|qcow2,socket=SOCK[,readonly=on][,queues=N][,serial=S][,queue-size=N] (repeatable)', collect)
    .option('--scsi <options>', 'id=ID,path=IMG,format=raw|qcow2,socket=SOCK[,readonly=on][,queues=N][,serial=S] — a virtio-scsi adapter, the image as target 0 LUN 0 (repeatable)', collect)
    .option('--net <options>', 'id=ID,tap=NAME,socket=SOCK[,queues=N][,mac=M][,mtu=N] — virtio-net data plane for -netdev vhost-user, bridged to a TAP (repeatable)', collect)
    .option('--rng <options>', 'id=ID,socket=SOCK[,rate=BYTES_PER_SECOND] (repeatable)', collect)
    .action(async (options: ServeCommandOptions) => {
      await serveCommand(options, (text) => process.stderr.write(`${text}\n`));
    });
  return cli;
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await program().parseAsync([...argv], { from: 'user' });
    return runStatus;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    process.stderr.write(`vmm: ${describeError(error)}\n`);
    if (VmmError.isInstance(error) && error.code === 'INTERRUPTED') return 130;
    return VmmError.isInstance(error) && (error.code === 'INVALID_CONFIG' || error.code === 'INVALID_OPTION') ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
