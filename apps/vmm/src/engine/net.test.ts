import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VmmError } from '../errors.js';
import { parseVmGroup, replicateVm } from '../config/group.js';
import { parseVmConfig } from '../config/schema.js';
import type { NetBenchResult, PingResult, UdpEchoResult } from '../workloads/net.js';
import { runVmGroup } from './run-group.js';

/** Two model guests on switch lan0: each pings the other and exchanges UDP with its echo service. */
function twoGuests(dispatch: 'inline' | 'workers', transport: 'pci' | 'mmio', ring: 'split' | 'packed') {
  const vm = {
    dispatch,
    transport,
    ring,
    memory: '32M',
    queueSize: 64,
    devices: [{ type: 'net', backend: 'switch:lan0' }],
    workloads: [
      { type: 'ping', count: 3 },
      { type: 'udp-echo', count: 8, size: 1000 },
    ],
  };
  return parseVmGroup({ vms: [vm, vm] });
}

describe('two model guests on one in-process switch', () => {
  it.each([
    ['inline', 'pci', 'split'],
    ['inline', 'mmio', 'packed'],
  ] as const)('%s %s %s: they ping each other and exchange UDP; every reply arrives with the payload sent', async (dispatch, transport, ring) => {
    const group = twoGuests(dispatch, transport, ring);
    // Defaults per VM: distinct MACs and addresses, each VM's peer the other one.
    expect(group.vms.map((v) => v.devices[0])).toMatchObject([
      { mac: '52:54:00:12:34:56', ip: '10.0.0.1/24' },
      { mac: '52:54:00:12:34:57', ip: '10.0.0.2/24' },
    ]);
    expect(group.vms.map((v) => v.workloads[0]?.type === 'ping' && v.workloads[0].peer)).toEqual(['10.0.0.2', '10.0.0.1']);
    const report = await runVmGroup(group);
    for (const [vm, r] of report.vms.entries()) {
      const ping = r.results.find((x): x is PingResult => x.type === 'ping')!;
      expect(ping).toMatchObject({ peer: vm === 0 ? '10.0.0.2' : '10.0.0.1', transmitted: 3, received: 3 });
      const echo = r.results.find((x): x is UdpEchoResult => x.type === 'udp-echo')!;
      // runUdpEcho fails the run on any echo that differs from what was sent: all 8 came back equal.
      expect(echo).toMatchObject({ sent: 8, echoed: 8, size: 1000 });
      expect(r.devices[0]!.needsReset).toBeUndefined();
    }
    expect(report.switches).toHaveLength(1);
    expect(report.switches[0]).toMatchObject({ name: 'lan0', ports: 2 });
    // The switch learned both guests' MACs on their ports.
    expect(report.switches[0]!.addresses).toEqual({ '52:54:00:12:34:56': 'vm0.net0', '52:54:00:12:34:57': 'vm1.net0' });
    expect(report.switches[0]!.stats.forwarded).toBeGreaterThan(0);
  }, 60_000);

  it('across vCPU worker threads (--vms 2): ping, UDP echo and a short net-bench', async () => {
    const base = parseVmConfig(
      {
        memory: '32M',
        devices: [{ type: 'net', backend: 'switch:lan0', mtu: 9000 }],
        workloads: [{ type: 'ping', count: 2 }, { type: 'udp-echo', count: 4, size: 8000 }, { type: 'net-bench', size: 1500, runtime: '200ms' }],
      },
      { inGroup: true },
    );
    const report = await runVmGroup({ vms: replicateVm(base, 2) });
    for (const r of report.vms) {
      expect(r.results.find((x): x is PingResult => x.type === 'ping')).toMatchObject({ transmitted: 2, received: 2 });
      expect(r.results.find((x): x is UdpEchoResult => x.type === 'udp-echo')).toMatchObject({ sent: 4, echoed: 4 });
      const bench = r.results.find((x): x is NetBenchResult => x.type === 'net-bench')!;
      expect(bench.sentPackets).toBeGreaterThan(0);
      expect(bench.receivedPackets).toBeGreaterThan(0);
      expect(bench.receivedPackets).toBeLessThanOrEqual(bench.sentPackets);
      expect(bench.receivedBytes).toBe(bench.receivedPackets * 1500);
      expect(r.machine.doorbells).toBeGreaterThan(0);
    }
  }, 60_000);

  it('over a -netdev stream socket instead of the switch: vm0 listens (server=on), vm1 connects; they ping and echo', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmm-net-'));
    try {
      const socket = join(dir, 'n.sock');
      const vm = (backend: string) => ({ dispatch: 'inline', memory: '32M', devices: [{ type: 'net', backend }], workloads: [{ type: 'ping', count: 2 }, { type: 'udp-echo', count: 4 }] });
      const report = await runVmGroup(parseVmGroup({ vms: [vm(`stream:${socket},server=on`), vm(`stream:${socket}`)] }));
      for (const r of report.vms) {
        expect(r.results.find((x): x is PingResult => x.type === 'ping')).toMatchObject({ transmitted: 2, received: 2 });
        expect(r.results.find((x): x is UdpEchoResult => x.type === 'udp-echo')).toMatchObject({ sent: 4, echoed: 4 });
      }
      expect(report.switches).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a peer that does not answer fails the run with GUEST_ERROR naming the VM, and releases the other VM', async () => {
    const vm = { dispatch: 'inline', memory: '32M', devices: [{ type: 'net', backend: 'switch:lan0' }] };
    const group = parseVmGroup({ vms: [{ ...vm, workloads: [{ type: 'ping', peer: '10.0.0.99', count: 1, timeout: '200ms' }] }, { ...vm, workloads: [] }] });
    const error = await runVmGroup(group).catch((e: unknown) => e);
    expect(VmmError.isInstance(error) && error.code).toBe('GUEST_ERROR');
    expect((error as Error).message).toMatch(/^vm 0: .*ping: no reply from 10\.0\.0\.99/);
  }, 30_000);
});
