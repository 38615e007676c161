import { L2Switch, NetDevice } from '@virtio-ts/backends';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { createMemoryLinkPair, IpInterface, NetDriver, runNetBench } from '../index.js';

describe('README: virtio-net', () => {
  it('example: two stacks over an in-memory link ping each other and talk UDP', async () => {
    const [a, b] = createMemoryLinkPair({ mtu: 1500 });
    const left = new IpInterface({ link: a, address: '10.0.0.1', prefixLength: 24 });
    const right = new IpInterface({ link: b, address: '10.0.0.2', prefixLength: 24 });

    const { received, rttMs } = await left.ping('10.0.0.2', { count: 3, size: 56, timeoutMs: 1000 });

    const echo = right.bindUdp(7);
    echo.onMessage(({ data, address, port }) => void echo.sendTo(address, port, data));
    const client = left.bindUdp(40000);
    await client.sendTo('10.0.0.2', 7, new TextEncoder().encode('hello'));
    const { value } = await client.next(); // or: for await (const message of client)

    expect(received).toBe(3);
    expect(rttMs.every((rtt) => rtt !== null)).toBe(true);
    expect(new TextDecoder().decode(value!.data)).toBe('hello');
  });

  it('example: two model guests (NetDriver ↔ NetDevice) on the L2 switch, and net-bench', async () => {
    const lan = new L2Switch({ mtu: 1500 });
    const nic = async (mac: string) => NetDriver.open(createPciHarness(new NetDevice({ backend: lan.connect(mac), mac })).transport);
    const a = await nic('52:54:00:00:00:01');
    const b = await nic('52:54:00:00:00:02');
    const host = new IpInterface({ link: a, address: '10.0.2.15' });
    new IpInterface({ link: b, address: '10.0.2.16' });
    const { received } = await host.ping('10.0.2.16', { count: 2 });
    const bench = await runNetBench(a, b, { frameSize: 1500, durationMs: 100 });

    expect(received).toBe(2);
    expect(bench.framesCorrupt).toBe(0);
    expect(bench.framesReceived).toBeGreaterThan(0);
  });
});
