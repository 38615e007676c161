import { VmmError } from '../errors.js';

/** The part of `@virtio-ts/guest` the qemu engine uses (loaded on demand: it is a development tool). */
interface GuestModule {
  buildGuest(): Promise<{ readonly kernel: string; readonly initrd: string }>;
}

/**
 * The kernel and initramfs tools/guest builds (a Debian cloud kernel with busybox, fio and
 * e2fsprogs; cached under .cache/guest after the first build). Its /init runs the script from
 * fw_cfg `opt/virtio-ts/script` and prints `VT-EXIT=<status>`, the protocol this engine relies on.
 */
export async function defaultGuest(): Promise<{ kernel: string; initrd: string }> {
  const specifier = '@virtio-ts/guest';
  let guest: GuestModule;
  try {
    guest = (await import(specifier)) as GuestModule;
  } catch (error) {
    throw new VmmError('GUEST_ERROR', 'no --kernel given and the default guest (@virtio-ts/guest, a workspace tool) is not available: build it with `pnpm --filter @virtio-ts/guest build`, or pass --kernel and --initrd', {}, { cause: error });
  }
  try {
    return await guest.buildGuest();
  } catch (error) {
    throw new VmmError('GUEST_ERROR', `cannot build the default guest: ${error instanceof Error ? error.message : String(error)} (scripts/install-peers.sh installs what it needs)`, {}, { cause: error });
  }
}
