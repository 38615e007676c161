import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// The README's Node example, with the TAP moved into a private network namespace and a stream
// client playing QEMU.
import { L2Switch } from '../index.js';
import { StreamNetBackend, TapNetBackend } from './index.js';

const canTap = process.getuid?.() === 0 && existsSync('/dev/net/tun');
if (!canTap && process.env.CI === 'true') throw new Error('CI=true: the README TAP example needs root and /dev/net/tun');

describe.skipIf(!canTap)(`README${canTap ? '' : ' (skipped: needs root and /dev/net/tun)'}`, () => {
  it('example: a QEMU VM (played by a stream client) and a TAP on one switch', async () => {
    const suffix = randomBytes(3).toString('hex');
    const ns = `vt-${suffix}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'vt-readme-'));
    const socketPath = path.join(dir, 'vt-net.sock');
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      const tap = TapNetBackend.open({ name: `vtr${suffix}` }); // CAP_NET_ADMIN
      execFileSync('ip', ['link', 'set', tap.name, 'netns', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', tap.name, 'up']);
      const qemu = await StreamNetBackend.listen({ path: socketPath });
      const lan = new L2Switch();
      lan.uplink(tap);
      lan.uplink(qemu);
      const vm = lan.connect('vm0'); // our own NetDevice's back-end

      const peer = await StreamNetBackend.connect({ path: socketPath });
      const atPeer: Uint8Array[] = [];
      peer.port(0).attach({ receive: (f) => (atPeer.push(f.slice()), true), writable() {} });
      await qemu.waitForPeer();
      const frame = new Uint8Array(60);
      frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5]);
      vm.port(0).send([frame]); // flooded: to the QEMU peer and out of the TAP
      // (the namespace's own IPv6 chatter may reach the peer too: look for ours)
      const ours = (): boolean => atPeer.some((f) => Buffer.compare(f, frame) === 0);
      for (let i = 0; i < 200 && !ours(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(ours()).toBe(true);
      expect(tap.stats.txFrames).toBe(1);

      await peer.close();
      lan.close();
      await qemu.close();
      await tap.close();
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
