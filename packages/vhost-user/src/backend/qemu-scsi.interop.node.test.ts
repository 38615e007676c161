import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ScsiDevice } from '@virtio-ts/backends';
import { openImage } from '@virtio-ts/block/node';
import { buildGuest, peerGate, runGuest, type GuestResult } from '@virtio-ts/guest';
import { UnixListener } from '@virtio-ts/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveConnection, type ConnectionEnd } from '../index.js';

const gate = peerGate('vhost-user-scsi interop');

/** Boots Linux under QEMU TCG with vhost-user-scsi-pci attached to our ScsiDevice serving `image` as target 0 LUN 0. */
async function bootWithOurScsi(image: string, script: string): Promise<{ guest: GuestResult; server: ConnectionEnd; device: ScsiDevice }> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'vt-vu-scsi-'));
  const socketPath = path.join(scratch, 'scsi.sock');
  const driver = await openImage(image, { format: 'raw', readOnly: false });
  const device = new ScsiDevice({
    luns: [{ target: 0, lun: 0, unit: { driver, vendor: 'VIRTIOTS', product: 'SCSI DISK', revision: '1.0', serial: 'vts-scsi-0001', wwn: 0x5000_1234_5678_9abcn } }],
    queueSize: 128,
  });
  const listener = UnixListener.listen(socketPath);
  const log: string[] = [];
  const served = listener.accept().then((socket) => serveConnection(socket, { device, log: (m) => log.push(m) }));
  try {
    const guest = await runGuest({
      guest: await buildGuest(),
      script,
      memory: '512M',
        // On a loaded host TCG can miss the kernel's IO-APIC timer check (a panic at boot).
        append: 'no_timer_check',
      smp: 1,
      timeoutMs: 180_000,
      qemuArgs: [
        '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
        '-chardev', `socket,id=vu0,path=${socketPath}`,
        '-device', 'vhost-user-scsi-pci,chardev=vu0,num_queues=1,virtqueue_size=128',
      ],
    });
    const server = await served;
    if (log.length > 0) console.log(log.join('\n'));
    if (server.reason !== 'closed') console.log(`server: ${server.reason} ${server.error?.message ?? ''}`);
    return { guest, server, device };
  } finally {
    listener.close();
    await driver.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

const MiB = 1 << 20;

describe.skipIf(gate.skip)(`Linux's virtio_scsi + sd over vhost-user against our ScsiDevice${gate.reason}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vt-vu-scsi-img-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('/dev/sda: vendor, model, serial, WWN in sysfs; ext4 + fsck; fio crc32c verify; blkdiscard; write cache and provisioning mode', async () => {
    const image = path.join(dir, 'scsi.raw');
    execFileSync('qemu-img', ['create', '-f', 'raw', image, '64M'], { stdio: 'ignore' });
    const { guest, server, device } = await bootWithOurScsi(image, [
      'D=/sys/block/sda/device',
      'echo VENDOR=$(cat $D/vendor) MODEL=$(cat $D/model | tr " " _) SIZE=$(cat /sys/block/sda/size)',
      'echo WWID=$(cat $D/wwid)',
      'echo SERIAL=$(cat $D/vpd_pg80 | tr -cd "[:alnum:]-")',
      'SD=$(ls -d /sys/class/scsi_disk/*)',
      'echo CACHE=$(cat $SD/cache_type | tr " " _) PROV=$(cat $SD/provisioning_mode) DMAX=$(cat /sys/block/sda/queue/discard_max_bytes)',
      'echo "write through" > $SD/cache_type && echo CACHE2=$(cat $SD/cache_type | tr " " _)',
      'echo "write back" > $SD/cache_type && echo CACHE3=$(cat $SD/cache_type | tr " " _)',
      '/usr/sbin/mke2fs -q -t ext4 /dev/sda 32M',
      'mount /dev/sda /mnt && echo virtio-ts-scsi > /mnt/hello && sync && umount /mnt',
      '/usr/sbin/e2fsck -fn /dev/sda',
      '/usr/bin/fio --name=verify --filename=/dev/sda --offset=32M --size=16M --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 --output-format=terse > /tmp/fio.out && echo FIO-OK',
      `dd if=/dev/urandom of=/dev/sda bs=1M seek=50 count=2 conv=fsync 2>/dev/null`,
      `/usr/sbin/blkdiscard -f -o ${50 * MiB} -l ${MiB} /dev/sda && echo DISCARD-OK`,
      'sync',
      'echo DONE',
    ].join('\n'));
    expect(guest.timedOut, guest.output.slice(-3000)).toBe(false);
    expect(guest.status, guest.output.slice(-3000)).toBe(0);
    expect(guest.output).toContain('VENDOR=VIRTIOTS MODEL=SCSI_DISK_______ SIZE=131072');
    expect(guest.output).toMatch(/WWID=naa\.5000123456789abc/);
    expect(guest.output).toContain('SERIAL=vts-scsi-0001');
    expect(guest.output).toContain('CACHE=write_back PROV=unmap DMAX=');
    expect(guest.output).toContain('CACHE2=write_through');
    expect(guest.output).toContain('CACHE3=write_back');
    expect(guest.output).toContain('FIO-OK');
    expect(guest.output).toContain('DISCARD-OK');
    expect(guest.output).toContain('DONE');
    expect(server.reason, server.error?.message).toBe('closed');
    expect(device.metrics.readBytes).toBeGreaterThan(0);
    expect(device.metrics.writeBytes).toBeGreaterThan(16 * MiB);
    execFileSync('/usr/sbin/e2fsck', ['-fn', image], { stdio: 'ignore' });
    const hello = execFileSync('/usr/sbin/debugfs', ['-R', 'cat /hello', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(hello.trim()).toBe('virtio-ts-scsi');
    // The raw file driver on Node has no hole punching (discard is a no-op), so UNMAP leaves the
    // bytes unspecified (SBC-3 §4.7.3.4): only the data around it is checked.
    const bytes = readFileSync(image);
    expect(bytes.subarray(51 * MiB, 52 * MiB).some((b) => b !== 0)).toBe(true);
  }, 300_000);
});
