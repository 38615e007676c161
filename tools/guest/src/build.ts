import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { INIT_SCRIPT } from './init-script.js';
import { defaultCacheDir } from './paths.js';

/** A built guest: a kernel and an initramfs that runs a test script (see init-script.ts). */
export interface GuestImage {
  readonly kernel: string;
  readonly initrd: string;
  readonly kernelVersion: string;
  readonly dir: string;
}

export interface BuildOptions {
  /** Where builds are cached (default: `<repo>/.cache/guest`, ignored by git). */
  readonly cacheDir?: string;
  /** Rebuild even when a matching build is cached. */
  readonly force?: boolean;
  readonly log?: (line: string) => void;
}

/** Modules the init loads (and everything they depend on, from modules.dep). */
const MODULES = [
  'virtio_pci', 'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_scsi', 'sd_mod', 'virtio-rng',
  'virtio_console', 'qemu_fw_cfg', 'crc32c_generic',
];

/** Host programs copied in with their shared libraries, called by full path inside the guest. */
const HOST_PROGRAMS = ['/usr/bin/fio', '/usr/sbin/mke2fs', '/usr/sbin/e2fsck', '/usr/bin/fallocate', '/usr/sbin/blkdiscard', '/usr/bin/sha256sum'];

/** The Debian packages that provide them (scripts/install-peers.sh installs these). */
const HOST_PACKAGES = 'busybox-static fio e2fsprogs util-linux coreutils cpio kmod';

export class GuestBuildError extends Error {
  readonly code = 'GUEST_BUILD';
  constructor(message: string, options?: ErrorOptions) {
    super(`${message} [GUEST_BUILD]`, options);
    this.name = 'GuestBuildError';
  }
}

function run(command: string, args: readonly string[], cwd?: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new GuestBuildError(`${command} ${args.join(' ')} failed: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, { cause: error });
  }
}

/** The versioned kernel package behind the linux-image-cloud-amd64 meta package. */
function resolveKernelPackage(): string {
  const depends = run('apt-cache', ['depends', 'linux-image-cloud-amd64']);
  const match = /Depends:\s*(linux-image-[\w.+-]+-cloud-amd64)/.exec(depends);
  if (!match) throw new GuestBuildError('apt-cache knows no linux-image-cloud-amd64 (run apt-get update as root)');
  return match[1]!;
}

/**
 * Builds (or returns the cached) guest: the Debian cloud kernel, its virtio modules, busybox, and
 * fio/e2fsprogs/util-linux programs with their libraries, in an uncompressed initramfs (TCG
 * decompresses gzip slowly; an uncompressed cpio boots faster).
 */
export async function buildGuest(options: BuildOptions = {}): Promise<GuestImage> {
  const log = options.log ?? (() => undefined);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  for (const program of [...HOST_PROGRAMS, '/bin/busybox']) {
    if (!existsSync(program)) throw new GuestBuildError(`${program} is missing on the host (apt-get install ${HOST_PACKAGES})`);
  }
  const kernelPackage = resolveKernelPackage();
  const inputs = createHash('sha256').update(INIT_SCRIPT).update(kernelPackage).update(MODULES.join()).update(HOST_PROGRAMS.join()).digest('hex').slice(0, 16);
  const dir = path.join(cacheDir, `${kernelPackage}-${inputs}`);
  const stampPath = path.join(dir, 'stamp.json');
  if (!options.force && existsSync(stampPath)) {
    const stamp = JSON.parse(await readFile(stampPath, 'utf8')) as GuestImage;
    if (existsSync(stamp.kernel) && existsSync(stamp.initrd)) return stamp;
  }
  await rm(dir, { recursive: true, force: true });
  const work = path.join(dir, 'work');
  const kroot = path.join(work, 'kernel');
  const root = path.join(work, 'initramfs');
  await mkdir(kroot, { recursive: true });
  await mkdir(root, { recursive: true });

  log(`downloading ${kernelPackage}`);
  run('apt-get', ['download', '-q', kernelPackage], work);
  const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
  if (!deb) throw new GuestBuildError(`apt-get download ${kernelPackage} produced no .deb`);
  run('dpkg-deb', ['-x', path.join(work, deb), kroot]);
  const kernelVersion = (await readdir(path.join(kroot, 'lib/modules')))[0]!;
  run('depmod', ['-b', kroot, kernelVersion]);

  // Modules: the closure of MODULES over modules.dep.
  const moduleDir = path.join(kroot, 'lib/modules', kernelVersion);
  const depLines = (await readFile(path.join(moduleDir, 'modules.dep'), 'utf8')).split('\n');
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of depLines) {
    const [file, rest] = line.split(':');
    if (!file) continue;
    deps.set(file, (rest ?? '').trim().split(/\s+/).filter(Boolean));
    byName.set(path.basename(file, '.ko').replace(/-/g, '_'), file);
  }
  const wanted = new Set<string>();
  const visit = (file: string): void => {
    if (wanted.has(file)) return;
    wanted.add(file);
    for (const d of deps.get(file) ?? []) visit(d);
  };
  for (const name of MODULES) {
    const file = byName.get(name.replace(/-/g, '_'));
    if (file) visit(file); // built-in modules have no file: nothing to copy
  }
  const targetModules = path.join(root, 'lib/modules', kernelVersion);
  for (const file of wanted) {
    await mkdir(path.dirname(path.join(targetModules, file)), { recursive: true });
    await copyFile(path.join(moduleDir, file), path.join(targetModules, file));
  }
  for (const f of await readdir(moduleDir)) {
    if (f.startsWith('modules.')) await copyFile(path.join(moduleDir, f), path.join(targetModules, f));
  }
  log(`${wanted.size} modules`);

  // busybox, /init, host programs and their libraries.
  await mkdir(path.join(root, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', path.join(root, 'bin/busybox'));
  await writeFile(path.join(root, 'init'), INIT_SCRIPT);
  await chmod(path.join(root, 'init'), 0o755);
  for (const d of ['sbin', 'usr/bin', 'usr/sbin', 'lib64', 'etc']) await mkdir(path.join(root, d), { recursive: true });
  await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const libraries = new Set<string>();
  for (const program of HOST_PROGRAMS) {
    const real = await realpath(program);
    await mkdir(path.dirname(path.join(root, program)), { recursive: true });
    await copyFile(real, path.join(root, program));
    await chmod(path.join(root, program), 0o755);
    for (const line of run('ldd', [real]).split('\n')) {
      const m = /(\/\S+)\s+\(0x/.exec(line);
      if (m) libraries.add(m[1]!);
    }
  }
  for (const lib of libraries) {
    const target = path.join(root, lib);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(await realpath(lib), target);
  }
  // Debian 12 is usr-merged: /lib → usr/lib for the dynamic loader's paths.
  if (!existsSync(path.join(root, 'lib/x86_64-linux-gnu')) && existsSync(path.join(root, 'usr/lib/x86_64-linux-gnu'))) {
    await symlink('../usr/lib/x86_64-linux-gnu', path.join(root, 'lib/x86_64-linux-gnu'));
  }
  log(`${HOST_PROGRAMS.length} programs, ${libraries.size} libraries`);

  const initrd = path.join(dir, 'initrd.cpio');
  execFileSync('sh', ['-c', `find . -print0 | cpio --null -o -H newc --quiet > ${JSON.stringify(initrd)}`], { cwd: root });
  const kernel = path.join(dir, 'vmlinuz');
  await copyFile(path.join(kroot, 'boot', `vmlinuz-${kernelVersion}`), kernel);
  await rm(work, { recursive: true, force: true });
  const image: GuestImage = { kernel, initrd, kernelVersion, dir };
  await writeFile(stampPath, JSON.stringify(image, null, 2));
  log(`guest ready: ${kernelVersion}, initrd ${((await stat(initrd)).size / 2 ** 20).toFixed(1)} MiB`);
  return image;
}
