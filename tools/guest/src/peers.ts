import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** What an interop test needs from the machine: commands on PATH and files. */
export interface PeerRequirements {
  readonly commands?: readonly string[];
  readonly files?: readonly string[];
}

/** The default needs of a test that boots the Linux guest under QEMU. */
export const GUEST_PEERS: PeerRequirements = {
  commands: ['qemu-system-x86_64', 'qemu-img', 'apt-get', 'depmod', 'cpio'],
  files: ['/usr/bin/fio', '/bin/busybox', '/usr/sbin/mke2fs'],
};

function onPath(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks an interop test's peers. On a user's machine a missing peer skips the test with a
 * visible reason; with CI=true it is an error (CI must never pass by skipping).
 *
 * @returns `skip` for `describe.skipIf` and `reason` to put in the suite's name.
 */
export function peerGate(what: string, requirements: PeerRequirements = GUEST_PEERS): { readonly skip: boolean; readonly reason: string } {
  const missing = [
    ...(requirements.commands ?? []).filter((c) => !onPath(c)),
    ...(requirements.files ?? []).filter((f) => !existsSync(f)),
  ];
  if (missing.length === 0) return { skip: false, reason: '' };
  if (process.env.CI === 'true') throw new Error(`CI=true: ${what} needs ${missing.join(', ')} (scripts/install-peers.sh installs them)`);
  return { skip: true, reason: ` (skipped: ${missing.join(', ')} missing — run scripts/install-peers.sh)` };
}
