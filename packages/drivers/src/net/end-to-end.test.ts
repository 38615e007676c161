// The driver against the real device (@virtio-ts/backends' NetDevice) over virtio-pci, and two
// model guests through the in-process L2Switch.
import { L2Switch, NetDevice } from '@virtio-ts/backends';
import { RecordingNetBackend } from '@virtio-ts/backends/testing';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { NET_BENCH_FRAME_SIZES, runNetBench } from './net-bench.js';
import { NetDriver, type NetDriverOptions } from './net-driver.js';
import { encodeEthernet } from './stack/ethernet.js';
import { IpInterface } from './stack/ip-interface.js';

const tick = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

async function guest(lan: L2Switch, mac: string, options: NetDriverOptions & { packed?: boolean; deviceMergeable?: boolean } = {}) {
  const device = new NetDevice({ backend: lan.connect(mac), mac, ...(options.packed === true ? { packed: true } : {}), ...(options.deviceMergeable === false ? { mergeableRxBuffers: false } : {}) });
  const harness = createPciHarness(device);
  const driver = await NetDriver.open(harness.transport, options);
  return { device, harness, driver };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

describe('NetDriver ↔ NetDevice (virtio-pci)', () => {
  it('negotiates with the real device and reads its config (mac, mtu, link)', async () => {
    const lan = new L2Switch({ mtu: 9000 });
    const { driver } = await guest(lan, '52:54:00:00:00:01');
    expect([...driver.mac]).toEqual([0x52, 0x54, 0, 0, 0, 1]);
    expect(driver.mtu).toBe(9000);
    expect(driver.linkUp).toBe(true);
  });

  it('control commands are acked by the device and change its receive filter', async () => {
    const lan = new L2Switch();
    const { device, driver } = await guest(lan, '52:54:00:00:00:01');
    await driver.setPromiscuous(true);
    await driver.setAllMulticast(false);
    await driver.setMacTable(['02:00:00:00:00:0a'], ['01:00:5e:00:00:01']);
    await driver.setMacAddress('52:54:00:00:00:99');
    expect(device.rxFilter).toMatchObject({ promisc: true, allmulti: false, unicast: ['02:00:00:00:00:0a'], multicast: ['01:00:5e:00:00:01'] });
    expect(device.mac).toBe('52:54:00:00:00:99');
  });

  it('multiqueue: VQ_PAIRS_SET enables the pairs and flows leave on several ports', async () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 4 });
    const device = new NetDevice({ backend, queuePairs: 4 });
    const driver = await NetDriver.open(createPciHarness(device).transport);
    expect(driver.queuePairs).toBe(4);
    expect(device.activeQueuePairs).toBe(4);
    for (let q = 0; q < 4; q++) expect(driver.transmit([encodeEthernet({ destination: new Uint8Array(6).fill(0xff), source: driver.mac, etherType: 0x88b5, payload: new Uint8Array([q]) })], { queue: q })).toBe(true);
    expect([0, 1, 2, 3].map((q) => backend.port(q).sent.length)).toEqual([1, 1, 1, 1]);
    // Frames the back-end delivers on queue pair 2 reach the driver.
    const got: Uint8Array[] = [];
    driver.onFrame((frame) => got.push(frame));
    backend.port(2).deliver(encodeEthernet({ destination: driver.mac, source: new Uint8Array(6), etherType: 0x88b5, payload: new Uint8Array(100).fill(2) }));
    await tick();
    expect(got).toHaveLength(1);
  });

  it('§5.1.4.2: link down and up from the device reach the driver through config interrupts', async () => {
    const lan = new L2Switch();
    const { device, driver } = await guest(lan, '52:54:00:00:00:01');
    const seen: boolean[] = [];
    driver.onLinkChange((up) => seen.push(up));
    device.setLinkUp(false);
    device.setLinkUp(true);
    expect(seen).toEqual([false, true]);
  });

  it('§2.4: reset returns every buffer to the guest allocator', async () => {
    const lan = new L2Switch();
    const device = new NetDevice({ backend: lan.connect('a') });
    const harness = createPciHarness(device);
    const free = harness.allocator.freeBytes;
    const driver = await NetDriver.open(harness.transport);
    driver.send(encodeEthernet({ destination: new Uint8Array(6).fill(0xff), source: driver.mac, etherType: 0x88b5, payload: new Uint8Array(100) }));
    driver.reset();
    expect(harness.allocator.freeBytes).toBe(free);
  });
});

describe('two model guests through the L2 switch', () => {
  it('ping each other both ways, and exchange UDP (split ring vs packed ring, mergeable vs not)', async () => {
    const lan = new L2Switch();
    const a = await guest(lan, '52:54:00:00:00:01');
    const b = await guest(lan, '52:54:00:00:00:02', { packed: true, mergeableRxBuffers: false });
    const left = new IpInterface({ link: a.driver, address: '10.0.2.1' });
    const right = new IpInterface({ link: b.driver, address: '10.0.2.2' });
    const there = await left.ping('10.0.2.2', { count: 3, size: 1472 });
    const back = await right.ping('10.0.2.1', { count: 3, size: 0 });
    expect(there.received).toBe(3);
    expect(back.received).toBe(3);
    const server = right.bindUdp(7);
    server.onMessage(({ data, address, port }) => void server.sendTo(address, port, data));
    const client = left.bindUdp(33000);
    const payload = new Uint8Array(1400).map((_, i) => i & 0xff);
    await client.sendTo('10.0.2.2', 7, payload);
    const { value } = await client.next();
    expect(sameBytes(value!.data, payload)).toBe(true);
    expect(lan.addresses().size).toBe(2); // both MACs learned
  });

  it('64 KiB frames (MTU 65522) cross the switch intact into merged and single big buffers', async () => {
    const lan = new L2Switch({ mtu: 65522 });
    const a = await guest(lan, '52:54:00:00:00:01');
    const b = await guest(lan, '52:54:00:00:00:02', { mergeableRxBuffers: false, receiveBuffers: 8 });
    expect(b.driver.receiveBufferSize).toBe(12 + 65522 + 18);
    const frame = encodeEthernet({ destination: b.driver.mac, source: a.driver.mac, etherType: 0x88b5, payload: new Uint8Array(65522).map((_, i) => (i * 13) & 0xff) });
    const gotB: Uint8Array[] = [];
    const gotA: Uint8Array[] = [];
    b.driver.onFrame((f) => gotB.push(f));
    a.driver.onFrame((f) => gotA.push(f));
    await a.driver.sendAsync(frame);
    await tick();
    expect(gotB).toHaveLength(1);
    expect(sameBytes(gotB[0]!, frame)).toBe(true);
    const reply = frame.slice();
    reply.set(a.driver.mac, 0);
    reply.set(b.driver.mac, 6);
    await b.driver.sendAsync(reply);
    await tick();
    expect(gotA).toHaveLength(1);
    expect(sameBytes(gotA[0]!, reply)).toBe(true);
    expect(a.driver.stats.rxFaults).toMatchObject({ numBuffersBeyondPosted: 0, shortHeader: 0 });
  });

  it('net-bench over the switch: 64 B, 1500 B and 64 KiB frames arrive uncorrupted, with packets/s and bandwidth reported', async () => {
    const lan = new L2Switch({ mtu: 65522 });
    const a = await guest(lan, '52:54:00:00:00:01');
    const b = await guest(lan, '52:54:00:00:00:02');
    for (const frameSize of NET_BENCH_FRAME_SIZES) {
      const result = await runNetBench(a.driver, b.driver, { frameSize, durationMs: 150 });
      expect(result.framesReceived).toBeGreaterThan(0);
      expect(result.framesCorrupt).toBe(0);
      expect(result.framesReceived + result.framesLost).toBe(result.framesSent);
      expect(result.packetsPerSecond).toBeGreaterThan(0);
      expect(result.bitsPerSecond).toBeCloseTo(result.packetsPerSecond * frameSize * 8, -3);
    }
  });
});
