import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildGuest, peerGate, runGuest } from '@virtio-ts/guest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { L2Switch } from '../net/l2-switch.js';
import { StreamNetBackend } from './stream-backend.js';
import { TapNetBackend } from './tap-backend.js';

const run = promisify(execFile);

/** QEMU and the guest (peerGate), plus root and /dev/net/tun for the TAP side. */
function gate(): { skip: boolean; reason: string } {
  const g = peerGate('QEMU -netdev stream interop');
  if (g.skip) return g;
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  if (missing.length === 0) {
    const help = execFileSync('qemu-system-x86_64', ['-netdev', 'help'], { encoding: 'utf8' });
    if (/^stream$/m.test(help)) return g;
    missing.push('qemu-system-x86_64 with -netdev stream (QEMU ≥ 7.2)');
  }
  if (process.env.CI === 'true') throw new Error(`CI=true: QEMU -netdev stream interop needs ${missing.join(', ')}`);
  return { skip: true, reason: ` (skipped: needs ${missing.join(', ')})` };
}

const g = gate();

describe.skipIf(g.skip)(`a QEMU VM's virtio-net over -netdev stream, through our L2Switch, to a TAP in a network namespace${g.reason}`, () => {
  const suffix = randomBytes(3).toString('hex');
  const ns = `vt-${suffix}`;
  const tapName = `vtq${suffix}`;
  const nsIp = '10.78.0.1';
  const guestIp = '10.78.0.2';
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vt-qnet-'));
    execFileSync('ip', ['netns', 'add', ns]);
  });
  afterAll(async () => {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('the guest pings the namespace, the namespace pings the guest (busybox ping), and a TCP message crosses (one boot)', async () => {
    const tap = TapNetBackend.open({ name: tapName });
    execFileSync('ip', ['link', 'set', tapName, 'netns', ns]);
    execFileSync('ip', ['-n', ns, 'addr', 'add', `${nsIp}/24`, 'dev', tapName]);
    execFileSync('ip', ['-n', ns, 'link', 'set', tapName, 'up']);
    const socketPath = path.join(dir, 'net.sock');
    const errors: string[] = [];
    const stream = await StreamNetBackend.listen({ path: socketPath }, { onError: (e) => errors.push(e.message) });
    const lan = new L2Switch({ name: 'qemu-lan' });
    lan.uplink(tap, 'tap');
    lan.uplink(stream, 'qemu');

    let nsPing: Promise<{ ok: boolean; output: string }> | undefined;
    const script = [
      'ip link set eth0 up',
      `ip addr add ${guestIp}/24 dev eth0`,
      `ping -c 3 -W 5 ${nsIp}`,
      'echo GUEST-PING-OK',
      // Wait (bounded) for the namespace's TCP message; it comes after the namespace's pings.
      'timeout 60 nc -l -p 7000 > /tmp/msg || true',
      'echo "MSG=$(cat /tmp/msg)"',
    ].join('\n');
    let output = '';
    try {
      const guest = await runGuest({
        guest: await buildGuest(),
        script,
        timeoutMs: 150_000,
        qemuArgs: [
          '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${socketPath}`,
          '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:57,romfile=',
        ],
        onOutput: (chunk) => {
          output += chunk;
          if (nsPing === undefined && output.includes('GUEST-PING-OK')) {
            nsPing = (async () => {
              try {
                const r = await run('ip', ['netns', 'exec', ns, '/bin/busybox', 'ping', '-c', '3', '-W', '5', guestIp]);
                // The guest's nc is listening by now; retry a few times in case it is not yet.
                for (let i = 0; i < 20; i++) {
                  try {
                    await run('ip', ['netns', 'exec', ns, 'bash', '-c', `echo HELLO-FROM-NS > /dev/tcp/${guestIp}/7000`]);
                    break;
                  } catch {
                    await new Promise((res) => setTimeout(res, 250));
                  }
                }
                return { ok: true, output: r.stdout };
              } catch (error) {
                return { ok: false, output: String(error) };
              }
            })();
          }
        },
      });
      const tail = guest.output.slice(-3000);
      expect(guest.timedOut, tail).toBe(false);
      expect(guest.status, tail).toBe(0);
      expect(guest.output).toMatch(/3 packets transmitted, 3 packets received/);
      expect(guest.output).toContain('GUEST-PING-OK');
      expect(nsPing, 'the namespace ping never started').toBeDefined();
      const ping = await nsPing!;
      expect(ping.ok, ping.output).toBe(true);
      expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
      expect(guest.output).toContain('MSG=HELLO-FROM-NS');
      expect(errors).toEqual([]);
      expect(stream.stats.connections).toBe(1);
      expect(stream.stats.rxFrames).toBeGreaterThan(6);
      expect(tap.stats.rxFrames).toBeGreaterThan(6);
      expect(lan.addresses().get('52:54:00:12:34:57')).toBe('qemu');
    } finally {
      lan.close();
      await stream.close();
      await tap.close();
    }
  }, 200_000);
});
