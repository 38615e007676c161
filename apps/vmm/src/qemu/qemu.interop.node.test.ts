import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

function have(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
// qemu-system-x86_64 runs the guest; apt-get, depmod and cpio build it (tools/guest); fio is copied in.
const missing = ['qemu-system-x86_64', 'qemu-img', 'apt-get', 'depmod', 'cpio'].filter((c) => !have(c));
if (!existsSync('/usr/bin/fio')) missing.push('fio');
if (missing.length > 0 && process.env.CI === 'true') throw new Error(`CI=true: vmm run --engine qemu peers missing: ${missing.join(', ')}`);
const skipReason = missing.length > 0 ? ` (skipped: ${missing.join(', ')} missing — run scripts/install-peers.sh)` : '';

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/main.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI; `onStderr` may send it a signal. */
function vmm(args: readonly string[], env: NodeJS.ProcessEnv = process.env, onStderr?: (text: string, pid: number) => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      onStderr?.(stderr, child.pid!);
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(missing.length > 0)(`vmm run --engine qemu: a real Linux guest on our vhost-user devices${skipReason}`, () => {
  let dir: string;
  let image: string;

  beforeAll(async () => {
    if (!existsSync(main)) execFileSync('pnpm', ['--filter', '@virtio-ts/vmm...', 'build'], { stdio: 'ignore' });
    // The default guest (built once, then cached under .cache/guest).
    await promisify(execFile)('pnpm', ['--filter', '@virtio-ts/guest', 'build']);
    dir = await mkdtemp(path.join(tmpdir(), 'vt-vmm-qemu-'));
    image = path.join(dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-f', 'qcow2', image, '64M'], { stdio: 'ignore' });
  }, 300_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const disk = (): string[] => ['--engine', 'qemu', '--memory', '512M', '--vcpus', '2', '--blk', `path=${image},format=qcow2,queues=2`, '--rng'];
  const script = async (name: string, text: string): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return file;
  };

  it('the guest writes a file system on the qcow2 disk, reads the hwrng and sees the scsi LUN; vmm exits 0, the serve flushed, qemu-img check is clean', async () => {
    const file = await script('fs.sh', [
      // --scsi size=16M: a scratch image as target 0 LUN 0 of a vhost-user-scsi-pci adapter.
      'test "$(cat /sys/block/sda/device/vendor)" = VIRTIOTS && test "$(cat /sys/block/sda/size)" -eq 32768',
      'dd if=/dev/urandom of=/dev/sda bs=64k count=16 conv=fsync 2>/dev/null && echo SCSI-OK',
      'test "$(cat /sys/class/misc/hw_random/rng_current)" != none',
      'test "$(dd if=/dev/hwrng bs=1024 count=4 2>/dev/null | wc -c)" -eq 4096',
      'test "$(ls /sys/block/vda/mq | wc -l)" -eq 2',
      '/usr/sbin/mke2fs -q -t ext4 /dev/vda',
      'mount /dev/vda /mnt && dd if=/dev/urandom of=/mnt/f bs=64k count=64 2>/dev/null && sha256sum /mnt/f > /mnt/f.sha && umount /mnt',
      'mount /dev/vda /mnt && sha256sum -c /mnt/f.sha && umount /mnt',
      '/usr/sbin/e2fsck -fn /dev/vda',
      'echo GUEST-DONE',
    ].join('\n'));
    const run = await vmm([...disk(), '--scsi', 'size=16M', '--script', file]);
    expect(run.code, `${run.stdout.slice(-3000)}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('SCSI-OK');
    expect(run.stdout).toContain('GUEST-DONE');
    expect(run.stderr).toContain('scsi0: image flushed and closed');
    expect(run.stderr).toContain('blk0: image flushed and closed');
    const check = JSON.parse(execFileSync('qemu-img', ['check', '--output=json', image], { encoding: 'utf8' })) as Record<string, number>;
    expect(check['corruptions'] ?? 0).toBe(0);
    expect(check['leaks'] ?? 0).toBe(0);
    expect(check['check-errors'] ?? 0).toBe(0);
    const flat = path.join(dir, 'flat.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', image, flat]);
    execFileSync('/usr/sbin/e2fsck', ['-fn', flat], { stdio: 'ignore' });
  }, 180_000);

  it('exits with the guest script\'s status (VT-EXIT=3 → 3); without devices or memory: a scratch qcow2 disk, an rng, 512 MiB', async () => {
    const run = await vmm(['--engine', 'qemu', '--script', await script('three.sh', 'test -b /dev/vda && test -c /dev/hwrng && grep -q "MemTotal: *4[0-9][0-9][0-9][0-9][0-9] kB" /proc/meminfo\necho failing on purpose\nexit 3\n')]);
    expect(run.stdout).toContain('failing on purpose');
    expect(run.code, run.stderr).toBe(3);
    expect(run.stdout).toContain('VT-EXIT=3');
    expect(run.stderr).toContain('blk0: image flushed and closed');
  }, 180_000);

  it('Ctrl-C (SIGINT) while the guest boots stops QEMU, flushes the image and exits 130 with INTERRUPTED', async () => {
    let sent = false;
    // As soon as QEMU has connected to the disk: the guest is booting (a third full boot would cost too much).
    const run = await vmm([...disk(), '--script', await script('sleep.sh', 'sleep 600\n')], process.env, (text, pid) => {
      if (!sent && text.includes('blk0: connection 1 opened')) {
        sent = true;
        process.kill(pid, 'SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(run.code, run.stderr).toBe(130);
    expect(run.stderr).toMatch(/vmm: interrupted: .*\[INTERRUPTED\]/);
    expect(run.stderr).toContain('blk0: image flushed and closed');
    const check = JSON.parse(execFileSync('qemu-img', ['check', '--output=json', image], { encoding: 'utf8' })) as Record<string, number>;
    expect(check['corruptions'] ?? 0).toBe(0);
  }, 180_000);

  it('a guest that never reports (QEMU cannot load the kernel) → NO_GUEST_STATUS, exit 1', async () => {
    const run = await vmm([...disk(), '--kernel', path.join(dir, 'no-such-kernel')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/vmm: QEMU exited with code \d+ and the guest reported no VT-EXIT status .*\[NO_GUEST_STATUS\]/);
    expect(run.stderr).toContain('blk0: image flushed and closed');
  }, 60_000);
});

describe('vmm run --engine qemu without QEMU', () => {
  it('fails with QEMU_MISSING before starting anything', async () => {
    const run = await vmm(['--engine', 'qemu'], { ...process.env, PATH: '/nonexistent' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^vmm: qemu-system-x86_64 was not found on PATH .*\[QEMU_MISSING\]\n$/);
  });

  it('qemu-engine flags need --engine qemu', async () => {
    const run = await vmm(['--kernel', '/k']);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('vmm: --kernel needs --engine qemu [INVALID_OPTION]\n');
  });
});
