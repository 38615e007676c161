import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest, peerGate, runGuest, type GuestResult } from '@virtio-ts/guest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const gate = peerGate('vmm serve interop');

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/main.js');

describe.skipIf(gate.skip)(`vmm serve: a vhost-user daemon for real Linux guests${gate.reason}`, () => {
  let dir: string;
  let serve: ChildProcess;
  let output = '';
  let exited: Promise<number | null>;
  let image: string;
  let scsiImage: string;
  let blkSocket: string;
  let scsiSocket: string;
  let rngSocket: string;

  beforeAll(async () => {
    if (!existsSync(main)) execFileSync('pnpm', ['--filter', '@virtio-ts/vmm...', 'build'], { stdio: 'ignore' });
    dir = await mkdtemp(path.join(tmpdir(), 'vt-serve-'));
    image = path.join(dir, 'disk.qcow2');
    blkSocket = path.join(dir, 'blk.sock');
    rngSocket = path.join(dir, 'rng.sock');
    scsiImage = path.join(dir, 'scsi.qcow2');
    scsiSocket = path.join(dir, 'scsi.sock');
    execFileSync('qemu-img', ['create', '-f', 'qcow2', image, '128M'], { stdio: 'ignore' });
    execFileSync('qemu-img', ['create', '-f', 'qcow2', scsiImage, '64M'], { stdio: 'ignore' });
    serve = spawn(process.execPath, [main, 'serve', '--blk', `id=d0,path=${image},format=qcow2,socket=${blkSocket},queues=2,serial=serve-d0`, '--rng', `id=r0,socket=${rngSocket}`, '--scsi', `id=s0,path=${scsiImage},format=qcow2,socket=${scsiSocket},serial=serve-s0`], { stdio: ['ignore', 'pipe', 'pipe'] });
    serve.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    serve.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    exited = new Promise((resolve) => serve.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (!output.includes('device(s) ready')) {
      if (Date.now() > deadline || serve.exitCode !== null) throw new Error(`vmm serve did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 120_000);

  afterAll(async () => {
    if (serve.exitCode === null) serve.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const boot = (script: string, signal?: AbortSignal, onOutput?: (chunk: string) => void, extraArgs: string[] = []): Promise<GuestResult> =>
    buildGuest().then((guest) =>
      runGuest({
        guest,
        script,
        memory: '512M',
        // On a loaded host TCG can miss the kernel's IO-APIC timer check (a panic at boot).
        append: 'no_timer_check',
        smp: 2,
        timeoutMs: 180_000,
        signal,
        onOutput,
        qemuArgs: [
          '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
          '-chardev', `socket,id=blk0,path=${blkSocket}`, '-device', 'vhost-user-blk-pci,chardev=blk0,num-queues=2',
          '-chardev', `socket,id=rng0,path=${rngSocket}`, '-device', 'vhost-user-rng-pci,chardev=rng0',
          ...extraArgs,
        ],
      }),
    );

  it('serves blk, scsi and rng; survives the front-end dying mid-I/O and serves the next one; SIGTERM flushes and closes the image', async () => {
    // 1. A guest that is killed (SIGKILL, no shutdown) while fio has writes in flight.
    const killer = new AbortController();
    let firstConsole = '';
    let killScheduled = false;
    const first = await boot(
      [
        'echo RNG=$(cat /sys/class/misc/hw_random/rng_current) BYTES=$(dd if=/dev/hwrng bs=1024 count=4 2>/dev/null | wc -c)',
        'echo FIO-START',
        '/usr/bin/fio --name=busy --filename=/dev/vda --offset=64M --size=32M --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio --direct=1 --time_based --runtime=600 --output-format=terse > /dev/null',
      ].join('\n'),
      killer.signal,
      (chunk) => {
        firstConsole += chunk; // a marker can arrive split across chunks
        if (firstConsole.includes('FIO-START') && !killScheduled) {
          killScheduled = true;
          setTimeout(() => killer.abort(), 3000);
        }
      },
    );
    expect(first.output).toMatch(/RNG=virtio_rng\.\d+ BYTES=4096/);
    expect(first.status).toBeNull(); // killed before it could report

    // 2. The daemon noticed, and serves the next front-end on the same socket and image.
    const deadline = Date.now() + 60_000;
    while (!/connection 1 (closed|opened)[\s\S]*connection 1 closed/.test(output) && !output.includes('connection 1 closed')) {
      if (Date.now() > deadline) throw new Error(`serve did not close the dead connection:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const second = await boot(
      [
        'echo SERIAL=$(cat /sys/block/vda/serial)',
        '/usr/sbin/mke2fs -q -t ext4 /dev/vda 32M',
        'mount /dev/vda /mnt && echo again > /mnt/f && sync && umount /mnt',
        '/usr/sbin/e2fsck -fn /dev/vda',
        '/usr/bin/fio --name=verify --filename=/dev/vda --offset=32M --size=16M --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --output-format=terse > /dev/null',
        // --scsi: the adapter's target 0 LUN 0 is /dev/sda.
        'echo SCSI=$(cat /sys/block/sda/device/vendor)/$(cat /sys/block/sda/device/model | tr " " _)/$(cat /sys/block/sda/device/vpd_pg80 | tr -cd "[:alnum:]-")/$(cat /sys/block/sda/size)',
        '/usr/sbin/mke2fs -q -t ext4 /dev/sda',
        'mount /dev/sda /mnt && echo on-scsi > /mnt/s && sync && umount /mnt',
        '/usr/sbin/e2fsck -fn /dev/sda && echo SCSI-FSCK-OK',
        'echo DONE',
      ].join('\n'),
      undefined,
      undefined,
      ['-chardev', `socket,id=scsi0,path=${scsiSocket}`, '-device', 'vhost-user-scsi-pci,chardev=scsi0,num_queues=1,virtqueue_size=128'],
    );
    expect(second.status, second.output.slice(-3000)).toBe(0);
    expect(second.output).toContain('SERIAL=serve-d0');
    expect(second.output).toContain('SCSI=VIRTIOTS/VIRTUAL_DISK____/serve-s0/131072');
    expect(second.output).toContain('SCSI-FSCK-OK');
    expect(second.output).toContain('DONE');

    // 3. SIGTERM: flush, close, exit 0; the image is consistent.
    serve.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('d0: image flushed and closed');
    expect(output).toContain('s0: image flushed and closed');
    expect(output).toMatch(/connection 2 closed by the front-end/);
    const check = JSON.parse(execFileSync('qemu-img', ['check', '--output=json', image], { encoding: 'utf8' })) as Record<string, number>;
    expect(check['corruptions'] ?? 0).toBe(0);
    expect(check['check-errors'] ?? 0).toBe(0);
    const flat = path.join(dir, 'flat.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', image, flat]);
    execFileSync('/usr/sbin/e2fsck', ['-fn', flat], { stdio: 'ignore' });
    const scsiCheck = JSON.parse(execFileSync('qemu-img', ['check', '--output=json', scsiImage], { encoding: 'utf8' })) as Record<string, number>;
    expect(scsiCheck['corruptions'] ?? 0).toBe(0);
    expect(scsiCheck['check-errors'] ?? 0).toBe(0);
    const scsiFlat = path.join(dir, 'scsi-flat.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', scsiImage, scsiFlat]);
    expect(execFileSync('/usr/sbin/debugfs', ['-R', 'cat /s', scsiFlat], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()).toBe('on-scsi');
  }, 600_000);
});

describe.skipIf(gate.skip)(`vmm serve restarted under a running guest (inflight I/O tracking, QEMU reconnect)${gate.reason}`, () => {
  it('SIGKILL of the daemon while fio writes with verify: QEMU reconnects to the restarted daemon with the inflight buffer, and the guest sees no error', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vt-serve-re-'));
    const image = path.join(dir, 'disk.raw');
    const socket = path.join(dir, 'blk.sock');
    // Raw: a write the first daemon completed is in the host page cache when it dies, as with any
    // process crash; a format with its own metadata cache would need the guest to flush.
    execFileSync('qemu-img', ['create', '-f', 'raw', image, '96M'], { stdio: 'ignore' });
    let output = '';
    const start = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [main, 'serve', '--blk', `id=d0,path=${image},format=raw,socket=${socket},queues=2,packed=off`], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const mark = output.length;
      const deadline = Date.now() + 30_000;
      while (!output.slice(mark).includes('device(s) ready')) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`vmm serve did not start:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return child;
    };
    let serve = await start();
    let restarted: Promise<ChildProcess> | undefined;
    let console_ = '';
    try {
      const guest = await runGuest({
        guest: await buildGuest(),
        script: [
          'echo FIO-START',
          '/usr/bin/fio --name=crash --filename=/dev/vda --size=64M --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --output-format=terse > /tmp/fio.out',
          'echo FIO-OK',
          'echo IOERRORS=$(dmesg | grep -c -i "i/o error" || true)',
        ].join('\n'),
        memory: '512M',
        // On a loaded host TCG can miss the kernel's IO-APIC timer check (a panic at boot).
        append: 'no_timer_check',
        smp: 2,
        timeoutMs: 300_000,
        onOutput: (chunk) => {
          console_ += chunk; // a marker can arrive split across chunks
          if (!console_.includes('FIO-START') || restarted) return;
          // Kill the daemon mid-write, then start a new one on the same socket and image.
          restarted = new Promise((resolve, reject) => {
            setTimeout(() => {
              serve.kill('SIGKILL');
              serve.once('exit', () => void start().then(resolve, reject));
            }, 4000);
          });
        },
        qemuArgs: [
          '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
          '-chardev', `socket,id=blk0,path=${socket},reconnect=1`, '-device', 'vhost-user-blk-pci,chardev=blk0,num-queues=2',
        ],
      });
      expect(restarted, 'the guest never started fio').toBeDefined();
      serve = await restarted!;
      expect(guest.status, guest.output.slice(-3000)).toBe(0);
      expect(guest.output).toContain('FIO-OK');
      expect(guest.output).toContain('IOERRORS=0');
      // QEMU handed the second daemon the buffer the first one had filled. Whether requests were in
      // flight at the instant of the kill depends on timing (under TCG the guest, not the daemon,
      // is the slow side); the resubmission itself is proven deterministically in
      // packages/vhost-user's inflight.node.test.ts.
      expect(output).toMatch(/inflight buffer set: 2 queue\(s\) of \d+ descriptors, 2 in use by an earlier back-end/);
      const resubmitted = /resubmitting (\d+) request/.exec(output);
      console.log(`daemon restart: ${resubmitted ? `${resubmitted[1]} request(s) resubmitted` : 'no request was in flight at the kill'}`);
      expect(output).toMatch(/connection 1 closed by the front-end/);
    } finally {
      if (serve.exitCode === null) {
        const exited = new Promise((resolve) => serve.once('exit', resolve));
        serve.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
