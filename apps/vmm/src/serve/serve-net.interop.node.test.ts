import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildGuest, peerGate, runGuest } from '@virtio-ts/guest';
import { describe, expect, it } from 'vitest';

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/main.js');
const run = promisify(execFile);

/** QEMU + the guest's tools, and root, /dev/net/tun and iproute2 for a private network namespace. */
function netGate(): { skip: boolean; reason: string } {
  const guest = peerGate('vmm serve --net interop');
  if (guest.skip) return guest;
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  for (const [program, args] of [['ip', ['-V']], ['busybox', ['true']]] as const) {
    try {
      execFileSync(program, args, { stdio: 'ignore' });
    } catch {
      missing.push(program);
    }
  }
  if (missing.length === 0) return { skip: false, reason: '' };
  if (process.env.CI === 'true') throw new Error(`CI=true: the vmm serve --net interop test needs ${missing.join(', ')}`);
  return { skip: true, reason: ` (skipped: needs ${missing.join(', ')})` };
}

const gate = netGate();

/** The namespace's end of the TCP transfers: a small node script run inside the namespace. */
const PEER_SCRIPT = `// The namespace side of the net interop test (run with \`ip netns exec NS node net-peer.mjs ...\`):
//   recv HOST PORT BYTES   accept one connection, hash exactly BYTES, print NS-RECV, close
//   send HOST PORT BYTES   connect, send BYTES random bytes with back-pressure, print NS-SENT
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

const [mode, host, portText, bytesText] = process.argv.slice(2);
const port = Number(portText);
const total = Number(bytesText);
const hash = createHash('sha256');

if (mode === 'recv') {
  const server = net.createServer((socket) => {
    let got = 0;
    socket.on('data', (chunk) => {
      const take = chunk.subarray(0, Math.max(0, total - got));
      hash.update(take);
      got += take.length;
      if (got === total) {
        console.log(\`NS-RECV bytes=\${got} sha=\${hash.digest('hex')}\`);
        socket.end();
        server.close();
      }
    });
    socket.on('error', (error) => {
      console.log(\`NS-RECV-ERROR \${error.message}\`);
      process.exit(1);
    });
  });
  server.listen(port, host, () => console.log('NS-LISTENING'));
} else if (mode === 'send') {
  // Half-open: the guest's busybox nc shuts its sending side down at once (stdin is empty).
  const socket = net.connect({ port, host, allowHalfOpen: true }, () => {
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const chunk = randomBytes(Math.min(1 << 16, total - sent));
        hash.update(chunk);
        sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end(() => console.log(\`NS-SENT bytes=\${sent} sha=\${hash.digest('hex')}\`));
    };
    pump();
  });
  socket.on('data', () => undefined);
  socket.on('error', (error) => {
    console.log(\`NS-SEND-ERROR \${error.message}\`);
    process.exit(1);
  });
} else {
  console.error('usage: net-peer.mjs recv|send HOST PORT BYTES');
  process.exit(2);
}
`;

const MiB = 1 << 20;
const NS_IP = '10.77.0.1';
const GUEST_IP = '10.77.0.2';
const MAC = '52:54:00:7e:57:01';

describe.skipIf(gate.skip)(`vmm serve --net: Linux's virtio_net over -netdev vhost-user, bridged to a TAP in a private network namespace${gate.reason}`, () => {
  it('one boot, two queue pairs: ping both ways, 64 MiB TCP each way with matching SHA-256 at both ends, both pairs carry traffic', async () => {
    const suffix = randomBytes(3).toString('hex');
    const ns = `vt-${suffix}`;
    const tap = `vt-tap-${suffix}`;
    const dir = await mkdtemp(path.join(tmpdir(), 'vt-serve-net-'));
    const socket = path.join(dir, 'net.sock');
    const peer = path.join(dir, 'net-peer.mjs');
    await writeFile(peer, PEER_SCRIPT);
    if (!existsSync(main)) execFileSync('pnpm', ['--filter', '@virtio-ts/vmm...', 'build'], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'add', ns]);
    const children: ChildProcess[] = [];
    let serveOutput = '';
    let peerOutput = '';
    const inNamespace = (args: string[], onOutput: (text: string) => void): ChildProcess => {
      const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (chunk: Buffer) => onOutput(chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => onOutput(chunk.toString()));
      children.push(child);
      return child;
    };
    const waitFor = async (what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${serveOutput}\n${peerOutput}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // The daemon runs inside the namespace, so the TAP it creates is there.
      const serve = inNamespace([process.execPath, main, 'serve', '--net', `id=n0,tap=${tap},socket=${socket},queues=2,mac=${MAC}`], (text) => (serveOutput += text));
      const serveExited = new Promise((resolve) => serve.once('exit', resolve));
      await waitFor('vmm serve', () => serveOutput.includes('device(s) ready'));
      execFileSync('ip', ['-n', ns, 'addr', 'add', `${NS_IP}/24`, 'dev', tap]);
      execFileSync('ip', ['-n', ns, 'link', 'set', tap, 'up']);
      inNamespace([process.execPath, peer, 'recv', NS_IP, '5001', String(64 * MiB)], (text) => (peerOutput += text));
      await waitFor('the namespace listener', () => peerOutput.includes('NS-LISTENING'));

      let console_ = '';
      let nsPing: Promise<string> | undefined;
      const guest = await runGuest({
        guest: await buildGuest(),
        script: [
          'ip link set lo up',
          'ip link set eth0 up',
          `ip addr add ${GUEST_IP}/24 dev eth0`,
          'echo QUEUES=$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)/$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l) MAC=$(cat /sys/class/net/eth0/address)',
          `ping -c 3 -W 5 ${NS_IP} > /tmp/ping.out && echo GUEST-PING-OK`,
          // Receive on CPU 0 and send on CPU 1: Linux picks the transmit queue by CPU (XPS), and the
          // TAP answers a flow on the queue the flow came from, so both pairs carry both directions.
          'taskset 1 nc -l -p 5002 < /dev/null > /tmp/in &',
          'LISTENER=$!',
          'sleep 1',
          'echo GUEST-LISTENING',
          'wait $LISTENER',
          'echo GUEST-IN $(sha256sum /tmp/in | cut -d" " -f1) $(wc -c < /tmp/in)',
          'dd if=/dev/urandom of=/tmp/out bs=1M count=64 2>/dev/null',
          'echo GUEST-OUT $(sha256sum /tmp/out | cut -d" " -f1)',
          `taskset 2 nc ${NS_IP} 5001 < /tmp/out`,
          'echo GUEST-SENT',
        ].join('\n'),
        memory: '512M',
        // On a loaded host TCG can miss the kernel's IO-APIC timer check (a panic at boot).
        append: 'no_timer_check',
        smp: 2,
        timeoutMs: 420_000,
        onOutput: (chunk) => {
          console_ += chunk;
          if (nsPing === undefined && console_.includes('GUEST-LISTENING')) {
            // The namespace pings the guest, then sends it 64 MiB.
            nsPing = run('ip', ['netns', 'exec', ns, 'busybox', 'ping', '-c', '3', '-W', '5', GUEST_IP], { encoding: 'utf8' }).then(
              (r) => r.stdout,
              (error: { stdout?: string; message: string }) => `ping failed: ${error.stdout ?? error.message}`,
            );
            void nsPing.then(() => inNamespace([process.execPath, peer, 'send', GUEST_IP, '5002', String(64 * MiB)], (text) => (peerOutput += text)));
          }
        },
        qemuArgs: [
          '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
          '-chardev', `socket,id=c0,path=${socket}`,
          '-netdev', 'vhost-user,id=n0,chardev=c0,queues=2',
          // vectors=0 (INTx): QEMU 7.2 under TCG dereferences a NULL irqfd table and segfaults
          // when a vhost-user-net device unmasks its MSI-X vectors (virtio_pci_one_vector_unmask
          // with use_guest_notifier_mask off and no KVM irqfd) — whatever the back-end.
          '-device', `virtio-net-pci,netdev=n0,mq=on,vectors=0,mac=${MAC}`,
        ],
      });
      const tail = `${guest.output.slice(-3000)}\n--- serve ---\n${serveOutput}\n--- namespace ---\n${peerOutput}`;
      expect(guest.timedOut, tail).toBe(false);
      expect(guest.status, tail).toBe(0);
      expect(guest.output).toContain(`QUEUES=2/2 MAC=${MAC}`);
      expect(guest.output).toContain('GUEST-PING-OK');
      expect(await nsPing).toMatch(/3 packets transmitted, 3 packets received/);
      // 64 MiB namespace → guest: the same SHA-256 at both ends.
      const sent = /NS-SENT bytes=(\d+) sha=([0-9a-f]{64})/.exec(peerOutput);
      const got = /GUEST-IN ([0-9a-f]{64}) (\d+)/.exec(guest.output);
      expect(sent, tail).not.toBeNull();
      expect(got, tail).not.toBeNull();
      expect([got![1], Number(got![2])]).toEqual([sent![2], 64 * MiB]);
      // 64 MiB guest → namespace.
      const out = /GUEST-OUT ([0-9a-f]{64})/.exec(guest.output);
      const received = /NS-RECV bytes=(\d+) sha=([0-9a-f]{64})/.exec(peerOutput);
      expect(out, tail).not.toBeNull();
      expect(received, tail).not.toBeNull();
      expect([received![2], Number(received![1])]).toEqual([out![1], 64 * MiB]);
      expect(guest.output).toContain('GUEST-SENT');

      // The daemon logs each queue's traffic when the connection ends (QEMU has exited).
      await waitFor('the connection end', () => serveOutput.includes('traffic:'));
      const traffic = /traffic: (.*)/.exec(serveOutput)![1]!;
      const frames = Object.fromEntries([...traffic.matchAll(/(rx\d|tx\d) (\d+) frames/g)].map((m) => [m[1]!, Number(m[2])]));
      console.log(`vmm serve --net: ${traffic}`);
      for (const queue of ['rx0', 'tx0', 'rx1', 'tx1']) expect(frames[queue], `${queue}: ${traffic}`).toBeGreaterThan(0);
      serve.kill('SIGTERM');
      await serveExited;
      expect(serveOutput).toContain('n0: closed');
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
