import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGuest, peerGate, runGuest } from './index.js';

const gate = peerGate('guest image builder');

describe.skipIf(gate.skip)(`guest image builder${gate.reason}`, () => {
  it('builds a guest whose Linux drives QEMU\'s own virtio-blk: ext4 + fsck clean + fio verify', async () => {
    const guest = await buildGuest();
    const scratch = await mkdtemp(path.join(tmpdir(), 'vt-guest-test-'));
    try {
      const disk = path.join(scratch, 'disk.raw');
      const scratchDisk = path.join(scratch, 'fio.raw');
      execFileSync('qemu-img', ['create', '-f', 'raw', disk, '64M'], { stdio: 'ignore' });
      execFileSync('qemu-img', ['create', '-f', 'raw', scratchDisk, '16M'], { stdio: 'ignore' });
      const script = [
        'echo SIZE=$(cat /sys/block/vda/size)',
        '/usr/sbin/mke2fs -q -t ext4 /dev/vda',
        'mount /dev/vda /mnt && echo hello > /mnt/f && umount /mnt',
        '/usr/sbin/e2fsck -fn /dev/vda',
        '/usr/bin/fio --name=v --filename=/dev/vdb --rw=randwrite --bs=4k --size=4M --iodepth=8 --ioengine=libaio --direct=1 --verify=crc32c --output-format=terse > /dev/null',
      ].join('\n');
      const result = await runGuest({
        guest,
        script,
        qemuArgs: [
          '-drive', `file=${disk},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0',
          '-drive', `file=${scratchDisk},if=none,id=d1,format=raw`, '-device', 'virtio-blk-pci,drive=d1',
        ],
        timeoutMs: 150_000,
      });
      expect(result.timedOut).toBe(false);
      expect(result.output).toContain('SIZE=131072');
      expect(result.status, result.output.slice(-2000)).toBe(0);
      expect(result.bootMs).toBeGreaterThan(0);
      // The guest wrote an ext4 file system (fio used the other disk) that the host agrees is clean.
      execFileSync('/usr/sbin/e2fsck', ['-fn', disk], { stdio: 'ignore' });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 200_000);

  it('reports a failing script as a non-zero status', async () => {
    const guest = await buildGuest();
    const result = await runGuest({ guest, script: 'echo about to fail\nexit 7', timeoutMs: 120_000 });
    expect(result.status).toBe(7);
  }, 150_000);
});
