import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlkDevice } from '@virtio-ts/backends';
import { openImage } from '@virtio-ts/block/node';
import { buildGuest, runGuest, type GuestResult } from '@virtio-ts/guest';
import { UnixListener } from '@virtio-ts/host';
import { describe, expect, it } from 'vitest';
import { serveConnection, type ConnectionEnd } from '../index.js';

function have(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const missing = ['qemu-system-x86_64', 'qemu-img', 'apt-get', 'depmod', 'cpio'].filter((c) => !have(c));
if (!existsSync('/usr/bin/fio')) missing.push('fio');
if (missing.length > 0 && process.env.CI === 'true') throw new Error(`CI=true: vhost-user interop peers missing: ${missing.join(', ')}`);
const skipReason = missing.length > 0 ? ` (skipped: ${missing.join(', ')} missing — run scripts/install-peers.sh)` : '';

interface Run {
  readonly guest: GuestResult;
  readonly server: ConnectionEnd;
}

/** Boots Linux under QEMU TCG with vhost-user-blk-pci attached to our back-end serving `image`. */
async function bootWithOurBlk(image: string, script: string, options: { queues?: number; packed?: boolean; readOnly?: boolean; format?: 'raw' | 'qcow2' } = {}): Promise<Run> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'vt-vu-'));
  const socketPath = path.join(scratch, 'blk.sock');
  const driver = await openImage(image, { format: options.format ?? 'raw', readOnly: options.readOnly ?? false });
  const device = new BlkDevice({ driver, serial: 'virtio-ts-0001', numQueues: options.queues ?? 1, queueSize: 256, readOnly: options.readOnly });
  const listener = UnixListener.listen(socketPath);
  const log: string[] = [];
  const served = listener.accept().then((socket) => serveConnection(socket, { device, log: (m) => log.push(m) }));
  try {
    const guest = await runGuest({
      guest: await buildGuest(),
      script,
      memory: '512M',
      timeoutMs: 150_000,
      qemuArgs: [
        '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
        '-chardev', `socket,id=vu0,path=${socketPath}`,
        '-device', `vhost-user-blk-pci,chardev=vu0,num-queues=${options.queues ?? 1}${options.packed ? ',packed=on' : ''}`,
      ],
    });
    const server = await served;
    if (log.length > 0) console.log(log.join('\n'));
    return { guest, server };
  } finally {
    listener.close();
    await driver.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

describe.skipIf(missing.length > 0)(`Linux's virtio_blk over vhost-user against our back-end${skipReason}`, () => {
  it('sees /dev/vda with the right size and serial; ext4 + fsck clean; the image holds the file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vt-vu-img-'));
    try {
      const image = path.join(dir, 'disk.raw');
      execFileSync('qemu-img', ['create', '-f', 'raw', image, '64M'], { stdio: 'ignore' });
      const { guest, server } = await bootWithOurBlk(image, [
        'echo SIZE=$(cat /sys/block/vda/size) SERIAL=$(cat /sys/block/vda/serial)',
        '/usr/sbin/mke2fs -q -t ext4 /dev/vda',
        'mount /dev/vda /mnt && echo virtio-ts > /mnt/hello && sync && umount /mnt',
        '/usr/sbin/e2fsck -fn /dev/vda',
      ].join('\n'));
      expect(guest.timedOut, guest.output.slice(-3000)).toBe(false);
      expect(guest.output).toContain('SIZE=131072 SERIAL=virtio-ts-0001');
      expect(guest.status, guest.output.slice(-3000)).toBe(0);
      expect(server.reason).toBe('closed');
      execFileSync('/usr/sbin/e2fsck', ['-fn', image], { stdio: 'ignore' });
      const cat = execFileSync('/usr/sbin/debugfs', ['-R', 'cat /hello', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(cat.trim()).toBe('virtio-ts');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
