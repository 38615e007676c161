import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGuest, peerGate, runGuest } from '@virtio-ts/guest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../config/schema.js';
import type { PingResult } from '../workloads/net.js';
import { runVm } from './run-vm.js';

const gate = peerGate('vmm -netdev stream interop');

describe.skipIf(gate.skip)(`a model guest on a QEMU guest's network (-netdev stream)${gate.reason}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vt-vmm-stream-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the model guest (stream server) and Linux under QEMU (virtio-net-pci, stream client) ping each other', async () => {
    const socket = join(dir, 'net.sock');
    // The model guest listens and pings 10.0.0.2 until Linux is up (1 s per unanswered request), then
    // keeps pinging, one request per 200 ms (answered ones would otherwise be done in a second or
    // two on a quiet host), long enough for Linux to ping it back: at least ~15 s after Linux is up.
    const config = parseVmConfig({
      dispatch: 'inline',
      memory: '32M',
      devices: [{ type: 'net', backend: `stream:${socket},server=on`, ip: '10.0.0.1/24' }],
      workloads: [{ type: 'ping', peer: '10.0.0.2', count: 100, size: 1000, timeout: '1s', interval: '200ms' }],
    });
    const model = runVm(config);
    // Linux: bring eth0 up, wait until the model guest's requests have made it learn 10.0.0.1, ping it back.
    const script = [
      'ip link set eth0 up',
      'ip addr add 10.0.0.2/24 dev eth0',
      'i=0; while ! ip neigh show 10.0.0.1 | grep -q lladdr; do i=$((i+1)); [ $i -lt 600 ] || exit 2; sleep 0.1; done',
      'ping -A -c 3 -W 5 -s 1000 10.0.0.1', // -A: the next request as soon as the reply is in (the model guest is still pinging)
      'ip neigh show 10.0.0.1',
      // Stay up until the model guest's requests stop (its 100 pings done), at most 60 s.
      'rx() { cat /sys/class/net/eth0/statistics/rx_packets; }',
      'i=0; prev=-1; while [ "$(rx)" != "$prev" ] && [ $i -lt 30 ]; do prev=$(rx); i=$((i+1)); sleep 2; done',
    ].join('\n');
    const guest = await runGuest({
      guest: await buildGuest(),
      script,
      memory: '512M',
      timeoutMs: 170_000,
      qemuArgs: ['-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${socket}`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:ab:cd:02'],
    });
    const report = await model;
    expect(guest.output).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
    // Linux learned the model guest's MAC from its ARP traffic.
    expect(guest.output).toMatch(/10\.0\.0\.1 dev eth0 lladdr 52:54:00:12:34:56/);
    expect(guest.status).toBe(0);
    const ping = report.results[0] as PingResult;
    // Replies come once Linux is up; each matched identifier, sequence and the 1000 data bytes.
    expect(ping.received).toBeGreaterThan(0);
    expect(ping.transmitted).toBe(100);
  }, 240_000);
});
