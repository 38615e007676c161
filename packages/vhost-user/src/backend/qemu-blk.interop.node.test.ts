import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlkDevice } from '@virtio-ts/backends';
import { openImage } from '@virtio-ts/block/node';
import { buildGuest, peerGate, runGuest, type GuestResult } from '@virtio-ts/guest';
import { UnixListener } from '@virtio-ts/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveConnection, type ConnectionEnd } from '../index.js';

const gate = peerGate('vhost-user interop');

interface Run {
  readonly guest: GuestResult;
  readonly server: ConnectionEnd;
}

interface BootOptions {
  readonly queues?: number;
  readonly packed?: boolean;
  readonly eventIdx?: boolean;
  readonly indirect?: boolean;
  readonly readOnly?: boolean;
  readonly format?: 'raw' | 'qcow2';
}

/** Boots Linux under QEMU TCG with vhost-user-blk-pci attached to our back-end serving `image`. */
async function bootWithOurBlk(image: string, script: string, options: BootOptions = {}): Promise<Run> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'vt-vu-'));
  const socketPath = path.join(scratch, 'blk.sock');
  const queues = options.queues ?? 1;
  const driver = await openImage(image, { format: options.format ?? 'raw', readOnly: options.readOnly ?? false });
  const device = new BlkDevice({
    driver, serial: 'virtio-ts-0001', numQueues: queues, queueSize: 256, readOnly: options.readOnly,
    packed: options.packed ?? false, eventIdx: options.eventIdx ?? true, indirect: options.indirect ?? true,
  });
  const listener = UnixListener.listen(socketPath);
  const log: string[] = [];
  const served = listener.accept().then((socket) => serveConnection(socket, { device, log: (m) => log.push(m) }));
  const flags = [`num-queues=${queues}`, `packed=${options.packed ? 'on' : 'off'}`, `event_idx=${options.eventIdx === false ? 'off' : 'on'}`, `indirect_desc=${options.indirect === false ? 'off' : 'on'}`];
  try {
    const guest = await runGuest({
      guest: await buildGuest(),
      script,
      memory: '512M',
        // On a loaded host TCG can miss the kernel's IO-APIC timer check (a panic at boot).
        append: 'no_timer_check',
      smp: queues,
      timeoutMs: 180_000,
      qemuArgs: [
        '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
        '-chardev', `socket,id=vu0,path=${socketPath}`,
        '-device', `vhost-user-blk-pci,chardev=vu0,${flags.join(',')}`,
      ],
    });
    const server = await served;
    if (log.length > 0) console.log(log.join('\n'));
    if (server.reason !== 'closed') console.log(`server: ${server.reason} ${server.error?.message ?? ''}`);
    return { guest, server };
  } finally {
    listener.close();
    await driver.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

const MiB = 1 << 20;

function expectGuestOk(guest: GuestResult): void {
  expect(guest.timedOut, guest.output.slice(-3000)).toBe(false);
  expect(guest.status, guest.output.slice(-3000)).toBe(0);
}

describe.skipIf(gate.skip)(`Linux's virtio_blk over vhost-user against our back-end${gate.reason}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vt-vu-img-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('raw, split ring, event idx, two queues on two vCPUs: model (virtio id 2), size and serial, ext4 + fsck clean, fio crc32c verify at depth 16', async () => {
    const image = path.join(dir, 'split.raw');
    execFileSync('qemu-img', ['create', '-f', 'raw', image, '64M'], { stdio: 'ignore' });
    const { guest, server } = await bootWithOurBlk(image, [
      'echo SIZE=$(cat /sys/block/vda/size) SERIAL=$(cat /sys/block/vda/serial) HWQ=$(ls /sys/block/vda/mq | wc -l)',
      // The device model: the virtio device behind vda is virtio device id 2 (block, VIRTIO 1.3 §5) from the virtio vendor.
      'echo MODEL=$(cat /sys/block/vda/device/modalias) VENDOR=$(cat /sys/block/vda/device/vendor) DEVICE=$(cat /sys/block/vda/device/device) DRIVER=$(basename $(readlink /sys/block/vda/device/driver))',
      '/usr/sbin/mke2fs -q -t ext4 /dev/vda 32M',
      'mount /dev/vda /mnt && echo virtio-ts > /mnt/hello && sync && umount /mnt',
      '/usr/sbin/e2fsck -fn /dev/vda',
      '/usr/bin/fio --name=verify --filename=/dev/vda --offset=32M --size=16M --offset_increment=16M --numjobs=2 --cpus_allowed=0-1 --cpus_allowed_policy=split --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --group_reporting --output-format=terse > /tmp/fio.out',
      'echo FIO-OK',
    ].join('\n'), { queues: 2 });
    expectGuestOk(guest);
    expect(guest.output).toContain('SIZE=131072 SERIAL=virtio-ts-0001 HWQ=2');
    expect(guest.output).toContain('MODEL=virtio:d00000002v00001AF4 VENDOR=0x1af4 DEVICE=0x0002 DRIVER=virtio_blk');
    expect(guest.output).toContain('FIO-OK');
    expect(server.reason).toBe('closed');
    expect(server.kicks.length).toBe(2);
    expect(server.kicks.every((k) => k > 0), `kicks per queue: ${server.kicks.join(',')}`).toBe(true);
    execFileSync('/usr/sbin/e2fsck', ['-fn', image], { stdio: 'ignore' });
    const hello = execFileSync('/usr/sbin/debugfs', ['-R', 'cat /hello', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(hello.trim()).toBe('virtio-ts');
  }, 300_000);

  it('qcow2, packed ring, event idx and indirect off: ext4 + fsck, discard and zero-range reach the image, qemu-img check clean', async () => {
    const image = path.join(dir, 'packed.qcow2');
    execFileSync('qemu-img', ['create', '-f', 'qcow2', image, '64M'], { stdio: 'ignore' });
    const { guest, server } = await bootWithOurBlk(image, [
      'echo DISCARD_MAX=$(cat /sys/block/vda/queue/discard_max_bytes) WZ_MAX=$(cat /sys/block/vda/queue/write_zeroes_max_bytes)',
      '/usr/sbin/mke2fs -q -t ext4 /dev/vda 32M',
      'mount /dev/vda /mnt && echo packed > /mnt/hello && sync && umount /mnt',
      '/usr/sbin/e2fsck -fn /dev/vda',
      '/usr/bin/fio --name=verify --filename=/dev/vda --offset=48M --size=8M --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --output-format=terse > /tmp/fio.out',
      `dd if=/dev/urandom of=/dev/vda bs=1M seek=40 count=4 conv=fsync 2>/dev/null`,
      `/usr/sbin/blkdiscard -f -o ${40 * MiB} -l ${2 * MiB} /dev/vda`,
      `/usr/bin/fallocate -z -o ${42 * MiB} -l ${2 * MiB} /dev/vda`,
      'sync',
      'echo DONE',
    ].join('\n'), { format: 'qcow2', packed: true, eventIdx: false, indirect: false });
    expectGuestOk(guest);
    expect(guest.output).toContain('DONE');
    expect(server.reason, server.error?.message).toBe('closed');
    const check = JSON.parse(execFileSync('qemu-img', ['check', '--output=json', image], { encoding: 'utf8' })) as Record<string, number>;
    expect(check['corruptions'] ?? 0).toBe(0);
    expect(check['leaks'] ?? 0).toBe(0);
    expect(check['check-errors'] ?? 0).toBe(0);
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', image], { encoding: 'utf8' })) as { start: number; length: number; data: boolean; zero: boolean }[];
    const touching = map.filter((e) => e.start < 44 * MiB && e.start + e.length > 40 * MiB);
    expect(touching.length).toBeGreaterThan(0);
    expect(touching.every((e) => !e.data && e.zero), JSON.stringify(touching)).toBe(true);
    // Data written before and after the range is still there.
    expect(map.some((e) => e.data && e.start < 48 * MiB + 8 * MiB && e.start + e.length > 48 * MiB)).toBe(true);
    const flat = path.join(dir, 'packed-flat.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', image, flat]);
    execFileSync('/usr/sbin/e2fsck', ['-fn', flat], { stdio: 'ignore' });
    const hello = execFileSync('/usr/sbin/debugfs', ['-R', 'cat /hello', flat], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(hello.trim()).toBe('packed');
  }, 300_000);

  it('a read-only device refuses writes and still reads', async () => {
    const image = path.join(dir, 'ro.raw');
    execFileSync('qemu-img', ['create', '-f', 'raw', image, '16M'], { stdio: 'ignore' });
    const { guest } = await bootWithOurBlk(image, [
      'echo RO=$(cat /sys/block/vda/ro)',
      'dd if=/dev/vda of=/dev/null bs=1M count=4 2>/dev/null && echo READ-OK',
      'if dd if=/dev/zero of=/dev/vda bs=4k count=1 conv=fsync 2>/dev/null; then echo WRITE-ALLOWED; exit 1; fi',
      'echo WRITE-REFUSED',
    ].join('\n'), { readOnly: true });
    expectGuestOk(guest);
    expect(guest.output).toContain('RO=1');
    expect(guest.output).toContain('READ-OK');
    expect(guest.output).toContain('WRITE-REFUSED');
  }, 300_000);
});
