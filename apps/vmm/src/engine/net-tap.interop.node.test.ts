import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Root, iproute2 and /dev/net/tun: the test makes a TAP in a private network namespace. */
function tapGate(): { skip: boolean; reason: string } {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    missing.push('iproute2');
  }
  if (missing.length === 0) return { skip: false, reason: '' };
  if (process.env.CI === 'true') throw new Error(`CI=true: the TAP test needs ${missing.join(', ')}`);
  return { skip: true, reason: ` (skipped: needs ${missing.join(', ')})` };
}

const gate = tapGate();
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** The built CLI (worker threads load dist: build first). */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');

describe.skipIf(gate.skip)(`vmm run --net tap: the model guest and the Linux kernel on one link${gate.reason}`, () => {
  const ns = `vt-vmm-${randomBytes(3).toString('hex')}`;
  const tap = 'vtvmm0';

  beforeAll(() => {
    // A TAP in a private namespace, with the kernel's end at 10.78.0.1/24; vmm runs in that namespace.
    ip('netns', 'add', ns);
    ip('-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    ip('-n', ns, 'addr', 'add', '10.78.0.1/24', 'dev', tap);
    ip('-n', ns, 'link', 'set', tap, 'up');
  });
  afterAll(() => {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  });

  it('the guest pings the kernel (ARP resolved by Linux, every echo reply matched)', () => {
    const stdout = execFileSync(
      'ip',
      ['netns', 'exec', ns, process.execPath, CLI, 'run', '--json', '--no-progress', '--memory', '32M', '--net', `tap:${tap},ip=10.78.0.2/24`, '--workload', 'ping,peer=10.78.0.1,count=3,size=1000'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const report = JSON.parse(stdout) as { results: { type: string; transmitted?: number; received?: number }[]; devices: { description: string; needsReset?: string }[] };
    expect(report.results).toMatchObject([{ type: 'ping', transmitted: 3, received: 3 }]);
    expect(report.devices[0]!.description).toContain(`on tap:${tap}`);
    expect(report.devices[0]!.needsReset).toBeUndefined();
    // The kernel's side of the TAP received the guest's frames (its ARP traffic and the 3 echo requests).
    const received = Number(execFileSync('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${tap}/statistics/rx_packets`], { encoding: 'utf8' }).trim());
    expect(received).toBeGreaterThanOrEqual(3);
  }, 90_000);
});
