import { featureBits, hasFeature, VIRTIO_F_VERSION_1 } from '@virtio-ts/device';
import { createPciHarness } from '@virtio-ts/pci/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DriverError } from '../errors.js';
import {
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
} from './constants.js';
import { NetDriver } from './net-driver.js';
import { ScriptedNetDevice } from './scripted-net-device.js';
import { pseudoHeaderSum } from './stack/checksum.js';
import { encodeEthernet, ETHERTYPE_IPV4 } from './stack/ethernet.js';
import { IpInterface } from './stack/ip-interface.js';
import { decodeIpv4, encodeIpv4, IP_PROTOCOL_UDP } from './stack/ipv4.js';
import { decodeUdp, encodeUdp } from './stack/udp.js';

const tick = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};
const frameOf = (length: number, seed = 1) => {
  const frame = new Uint8Array(length);
  for (let i = 0; i < length; i++) frame[i] = (i * 7 + seed) & 0xff;
  frame[12] = 0x88;
  frame[13] = 0xb5;
  return frame;
};
/** Byte equality without vitest's element-by-element diffing (slow on 64 KiB arrays). */
const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
async function setUp(device = new ScriptedNetDevice(), options: Parameters<typeof NetDriver.open>[1] = {}) {
  const harness = createPciHarness(device);
  const freeBefore = harness.allocator.freeBytes;
  const driver = await NetDriver.open(harness.transport, options);
  const received: Uint8Array[] = [];
  driver.onFrame((frame) => received.push(frame));
  return { harness, device, driver, received, freeBefore };
}

describe('NetDriver: initialisation (§5.1.5)', () => {
  it('negotiates VERSION_1, MAC, STATUS, MRG_RXBUF, CTRL_VQ, CTRL_RX, CTRL_MAC_ADDR, MTU, MQ and reads the config', async () => {
    const { driver, device } = await setUp(new ScriptedNetDevice({ mtu: 9000, maxPairs: 4 }));
    for (const bit of [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_MTU, VIRTIO_NET_F_MQ]) {
      expect(hasFeature(driver.features, bit)).toBe(true);
    }
    expect(hasFeature(driver.features, VIRTIO_NET_F_CSUM)).toBe(false);
    expect([...driver.mac]).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    expect(driver.mtu).toBe(9000);
    expect(driver.maxQueuePairs).toBe(4);
    expect(driver.linkUp).toBe(true);
    // §5.1.6.5.5: the pairs are enabled with VQ_PAIRS_SET after DRIVER_OK.
    expect(device.commands).toEqual([{ commandClass: VIRTIO_NET_CTRL_MQ, command: 0, data: Uint8Array.of(4, 0) }]);
    expect(driver.queuePairs).toBe(4);
  });

  it('§2.5.1: a configuration that changes in the middle of the read is read again (config_generation) and the driver sees the new values', async () => {
    const device = new ScriptedNetDevice({ mtu: 9000 });
    let stage = 0;
    device.configReadHook = (offset) => {
      // The MTU check before FEATURES_OK reads offset 10; then the driver reads the struct from 0:
      // right after its first access the whole configuration changes.
      if (stage === 0 && offset === 10) stage = 1;
      else if (stage === 1 && offset === 0) {
        stage = 2;
        device.rewriteConfig([2, 9, 9, 9, 9, 9], 4000);
      }
    };
    const driver = await NetDriver.open(createPciHarness(device).transport);
    expect(stage).toBe(2);
    expect([...driver.mac]).toEqual([2, 9, 9, 9, 9, 9]);
    expect(driver.mtu).toBe(4000);
  });

  it('§5.1.3.1: CTRL_RX, CTRL_MAC_ADDR and MQ are not accepted without CTRL_VQ', async () => {
    const features = featureBits(VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_MQ);
    const { driver } = await setUp(new ScriptedNetDevice({ features, maxPairs: 2 }));
    expect(driver.features).toBe(featureBits(VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC));
    await expect(driver.setPromiscuous(true)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(driver.queuePairs).toBe(1);
  });

  it('§5.1.4.1: "The device MUST set mtu to between 68 and 65535" — an mtu of 60 leaves MTU unaccepted', async () => {
    const { driver } = await setUp(new ScriptedNetDevice({ mtu: 60 }));
    expect(hasFeature(driver.features, VIRTIO_NET_F_MTU)).toBe(false);
    expect(driver.mtu).toBe(1500);
  });

  it('§5.1.4.1: max_virtqueue_pairs outside 1..0x8000 is treated as one pair', async () => {
    const { driver, device } = await setUp(new ScriptedNetDevice({ maxPairs: 0, queuePairs: 2 }));
    expect(driver.maxQueuePairs).toBe(1);
    expect(device.commands).toEqual([]);
  });

  it('§5.1.4.2: without VIRTIO_NET_F_MAC the driver "SHOULD use a locally-administered MAC address"', async () => {
    const { driver } = await setUp(new ScriptedNetDevice({ features: featureBits(VIRTIO_F_VERSION_1) }));
    expect(driver.mac[0]! & 0x03).toBe(0x02); // locally administered, unicast
    expect(driver.linkUp).toBe(true); // §5.1.4.2: without STATUS "it SHOULD assume the link is active"
  });

  it('§5.1.4.2: a link-status change arrives with the configuration change notification', async () => {
    const { driver, device } = await setUp();
    const seen: boolean[] = [];
    driver.onLinkChange((up) => seen.push(up));
    device.setLink(false);
    device.setLink(true);
    expect(seen).toEqual([false, true]);
    expect(driver.linkUp).toBe(true);
  });

  it('§3.1.1: a device whose max_virtqueue_pairs needs more queues than it has is refused (PROTOCOL) and marked FAILED', async () => {
    const harness = createPciHarness(new ScriptedNetDevice({ maxPairs: 4, queuePairs: 1 }));
    await expect(NetDriver.open(harness.transport)).rejects.toMatchObject({ code: 'PROTOCOL' });
    expect(harness.transport.getStatus() & 0x80).toBe(0x80);
  });

  it('refuses a device that is not a network device', async () => {
    const harness = createPciHarness(new (await import('@virtio-ts/pci/testing')).EchoDevice());
    await expect(NetDriver.open(harness.transport)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});

describe('NetDriver: receive (§5.1.6.3, §5.1.6.4)', () => {
  it('§5.1.6.3.1: with MRG_RXBUF the receiveq is filled with page-sized buffers', async () => {
    const { driver, device } = await setUp();
    expect(driver.receiveBufferSize).toBe(4096);
    expect(device.availableReceiveBuffers()).toBe(256);
  });

  it('§5.1.6.3.1: without MRG_RXBUF buffers hold at least 1526 bytes, and a whole MTU-sized packet', async () => {
    const plain = await setUp(new ScriptedNetDevice(), { mergeableRxBuffers: false });
    expect(plain.driver.receiveBufferSize).toBe(1530); // 12 + 1500 + 14 + 4 (one VLAN tag) ≥ 1526
    const jumbo = await setUp(new ScriptedNetDevice({ mtu: 9000 }), { mergeableRxBuffers: false });
    expect(jumbo.driver.receiveBufferSize).toBe(12 + 9000 + 18);
    expect(jumbo.device.deliver(frameOf(9014))).toBe(true);
    expect(same(jumbo.received[0], frameOf(9014))).toBe(true);
  });

  it('§5.1.6.4: a packet over num_buffers merged buffers is reassembled, and the buffers are reposted', async () => {
    const { device, received } = await setUp();
    const big = frameOf(65536 - 12, 3);
    expect(device.deliver(big)).toBe(true); // 17 page buffers
    expect(device.deliver(frameOf(60, 4))).toBe(true);
    expect(received).toHaveLength(2);
    expect(same(received[0], big)).toBe(true);
    expect(same(received[1], frameOf(60, 4))).toBe(true);
    expect(device.availableReceiveBuffers()).toBe(256);
  });

  it('frames of every size from 14 to 9014 bytes arrive intact, merged or not (property)', async () => {
    const merged = await setUp(new ScriptedNetDevice({ mtu: 9000 }));
    const single = await setUp(new ScriptedNetDevice({ mtu: 9000 }), { mergeableRxBuffers: false });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 14, max: 9014 }), fc.nat(255), async (length, seed) => {
        for (const { device, received } of [merged, single]) {
          received.length = 0;
          expect(device.deliver(frameOf(length, seed))).toBe(true);
          expect(received).toHaveLength(1);
          expect(same(received[0], frameOf(length, seed))).toBe(true);
        }
      }),
      { numRuns: 60 },
    );
  });

  const header = (fields: { numBuffers?: number; flags?: number; gsoType?: number; csumStart?: number; csumOffset?: number }) => {
    const bytes = new Uint8Array(12);
    const v = new DataView(bytes.buffer);
    v.setUint8(0, fields.flags ?? 0);
    v.setUint8(1, fields.gsoType ?? 0);
    v.setUint16(6, fields.csumStart ?? 0, true);
    v.setUint16(8, fields.csumOffset ?? 0, true);
    v.setUint16(10, fields.numBuffers ?? 1, true);
    return bytes;
  };
  const packet = (hdr: Uint8Array, frame: Uint8Array) => Uint8Array.from([...hdr, ...frame]);

  it('H9 / §2.7.8.1: a used length beyond the buffer breaks the queue: PROTOCOL fault, needsReset, link down, no throw; reset and reopen work', async () => {
    const { harness, device, driver, received, freeBefore } = await setUp();
    const faults: DriverError[] = [];
    driver.onFault((error) => faults.push(error));
    expect(() => device.deliverRaw(0, [{ bytes: packet(header({}), frameOf(60)), usedLength: 4097 }])).not.toThrow();
    expect(driver.stats.rxFaults.usedLengthBeyondBuffer).toBe(1);
    expect(driver.stats.brokenQueues).toBe(1);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ code: 'PROTOCOL', context: { queue: 0 } });
    expect(driver).toMatchObject({ needsReset: true, linkUp: false });
    expect(received).toEqual([]);
    driver.reset();
    expect(harness.allocator.freeBytes).toBe(freeBefore);
    const again = await NetDriver.open(harness.transport);
    const got: Uint8Array[] = [];
    again.onFrame((frame) => got.push(frame));
    device.deliver(frameOf(60));
    expect(got).toEqual([frameOf(60)]);
  });

  it('§5.1.6.4: num_buffers of 0, or beyond the buffers posted, is refused', async () => {
    const { device, driver, received } = await setUp(new ScriptedNetDevice({ queueSize: 16 }));
    device.deliverRaw(0, [{ bytes: packet(header({ numBuffers: 0 }), frameOf(60)) }]);
    device.deliverRaw(0, [{ bytes: packet(header({ numBuffers: 17 }), frameOf(60)) }]);
    expect(driver.stats.rxFaults).toMatchObject({ numBuffersZero: 1, numBuffersBeyondPosted: 1 });
    device.deliver(frameOf(100));
    expect(received).toEqual([frameOf(100)]);
  });

  it('§5.1.6.3.2: "The device MUST use only a single descriptor if VIRTIO_NET_F_MRG_RXBUF was not negotiated" — num_buffers 2 is refused', async () => {
    const { device, driver, received } = await setUp(new ScriptedNetDevice(), { mergeableRxBuffers: false });
    device.deliverRaw(0, [{ bytes: packet(header({ numBuffers: 2 }), frameOf(60)) }]);
    expect(driver.stats.rxFaults.numBuffersNotOne).toBe(1);
    expect(received).toEqual([]);
  });

  it('a merged packet whose continuation never fits is dropped with the packet, and the next packet still arrives', async () => {
    const { device, driver, received } = await setUp();
    // num_buffers 3, then a continuation buffer, then a fresh packet header where the third part should be: the third part is taken as data.
    device.deliverRaw(0, [{ bytes: packet(header({ numBuffers: 3 }), frameOf(100)) }, { bytes: frameOf(50) }, { bytes: frameOf(50, 2) }]);
    expect(received).toHaveLength(1);
    expect(received[0]!.length).toBe(200);
    expect(driver.stats.rxFrames).toBe(1);
    device.deliver(frameOf(70));
    expect(received.at(-1)).toEqual(frameOf(70));
  });

  it('short header, runt frame, gso_type, NEEDS_CSUM without GUEST_CSUM are refused and counted; unknown flag bits are ignored (§5.1.6.4.2)', async () => {
    const { device, driver, received } = await setUp();
    device.deliverRaw(0, [{ bytes: new Uint8Array(11) }]);
    device.deliverRaw(0, [{ bytes: packet(header({}), frameOf(13)) }]);
    device.deliverRaw(0, [{ bytes: packet(header({ gsoType: 1 }), frameOf(60)) }]);
    device.deliverRaw(0, [{ bytes: packet(header({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 6 }), frameOf(60)) }]);
    // §5.1.6.4.2: "The driver MUST ignore flag bits that it does not recognize."
    device.deliverRaw(0, [{ bytes: packet(header({ flags: 0xf8 }), frameOf(60, 9)) }]);
    expect(driver.stats.rxFaults).toMatchObject({ shortHeader: 1, runt: 1, unexpectedGso: 1, badChecksumOffload: 1 });
    expect(received).toEqual([frameOf(60, 9)]);
  });

  it('§5.1.6.4 with GUEST_CSUM: a partially checksummed UDP packet (NEEDS_CSUM) is completed by the driver', async () => {
    const { device, driver, received } = await setUp(new ScriptedNetDevice({ features: featureBits(VIRTIO_F_VERSION_1, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MRG_RXBUF) }), { checksumOffload: true });
    expect(hasFeature(driver.features, VIRTIO_NET_F_GUEST_CSUM)).toBe(true);
    const source = 0x0a000001;
    const destination = 0x0a000002;
    const udp = encodeUdp({ sourcePort: 1000, destinationPort: 7, data: new Uint8Array([1, 2, 3, 4, 5]) }, source, destination);
    const partial = pseudoHeaderSum(source, destination, IP_PROTOCOL_UDP, udp.length);
    udp[6] = partial >>> 8; // what a sender with checksum offload leaves in the field
    udp[7] = partial & 0xff;
    const ip = encodeIpv4({ identification: 1, ttl: 64, protocol: IP_PROTOCOL_UDP, source, destination, payload: udp });
    const frame = encodeEthernet({ destination: driver.mac, source: new Uint8Array(6), etherType: ETHERTYPE_IPV4, payload: ip });
    device.deliver(frame, { hdr: { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 6 } });
    expect(received).toHaveLength(1);
    const datagram = decodeUdp(decodeIpv4(received[0]!.subarray(14)).payload, source, destination);
    expect([...datagram.data]).toEqual([1, 2, 3, 4, 5]);
  });

  it('H13: a flood of malformed completions leaves guest memory flat, and a valid frame still arrives', async () => {
    const { harness, device, driver, received } = await setUp(new ScriptedNetDevice({ queueSize: 64 }));
    const free = harness.allocator.freeBytes;
    for (let i = 0; i < 2000; i++) device.deliverRaw(0, [{ bytes: packet(header({ numBuffers: i % 2 === 0 ? 0 : 1, gsoType: i % 2 }), frameOf(60)) }]);
    expect(harness.allocator.freeBytes).toBe(free);
    expect(driver.stats.rxFaults.numBuffersZero + driver.stats.rxFaults.unexpectedGso).toBe(2000);
    expect(device.deliver(frameOf(80))).toBe(true);
    expect(received).toHaveLength(1);
  });

  it('hostile completions in any order never throw and never stop reception (property)', async () => {
    const { device, driver, received } = await setUp(new ScriptedNetDevice({ queueSize: 32 }));
    const completion = fc.record({
      bytes: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xff })).map(([n, flags, gso]) => packet(header({ numBuffers: n, flags, gsoType: gso & 1 ? gso : 0 }), frameOf(60)))),
      usedLength: fc.option(fc.integer({ min: 0, max: 4096 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(completion, { maxLength: 8 }), async (writes) => {
        expect(() => device.deliverRaw(0, writes)).not.toThrow();
        // Whatever happened, the driver reposted its buffers: a packet spanning them all can be merged again only if they are all back.
        received.length = 0;
        // End any packet the driver is still assembling (its num_buffers may be pending) with plain buffers.
        for (let i = 0; i < 40 && received.length === 0; i++) device.deliver(frameOf(64, i));
        expect(received.length).toBeGreaterThan(0);
      }),
      { numRuns: 100 },
    );
    expect(Object.values(driver.stats.rxFaults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });
});

describe('NetDriver: transmit (§5.1.6.2)', () => {
  it('§5.1.6.2.1: header with num_buffers 0 and flags 0, then the frame, in one device-readable buffer', async () => {
    const { device, driver } = await setUp();
    expect(driver.send(frameOf(60))).toBe(true);
    expect(device.transmitted).toHaveLength(1);
    expect(device.transmitted[0]).toMatchObject({ queue: 1, segments: 1, frame: frameOf(60) });
    expect(device.transmitted[0]!.hdr).toMatchObject({ flags: 0, gsoType: 0, numBuffers: 0 });
    expect(driver.stats).toMatchObject({ txFrames: 1, txBytes: 60, txCompleted: 1 });
  });

  it('scatter layout: the header in its own descriptor, then one per part', async () => {
    const { device, driver } = await setUp(new ScriptedNetDevice({ features: featureBits(VIRTIO_F_VERSION_1) }), { transmitLayout: 'scatter' });
    const frame = frameOf(300);
    expect(driver.transmit([frame.subarray(0, 14), frame.subarray(14, 100), frame.subarray(100)])).toBe(true);
    expect(device.transmitted[0]).toMatchObject({ segments: 4, frame });
  });

  it('§5.1.4.2: "The driver SHOULD NOT transmit packets exceeding mtu" — oversize and runt frames are INVALID_ARGUMENT', async () => {
    const { driver } = await setUp();
    expect(() => driver.send(new Uint8Array(1500 + 18 + 1))).toThrow(/outside/);
    expect(() => driver.send(new Uint8Array(13))).toThrow(DriverError);
    expect(driver.send(new Uint8Array(1518))).toBe(true); // MTU + Ethernet header + one VLAN tag
  });

  it('back-pressure: a full transmitq makes send return false; onWritable fires when the device completes; sendAsync waits', async () => {
    const { device, driver } = await setUp(new ScriptedNetDevice({ queueSize: 8, features: featureBits(VIRTIO_F_VERSION_1) }));
    device.holdTransmits = true;
    let sent = 0;
    while (driver.send(frameOf(60, sent))) sent++;
    expect(sent).toBe(8);
    expect(driver.stats.txFull).toBe(1);
    let writable = 0;
    driver.onWritable(() => writable++);
    const later = driver.sendAsync(frameOf(60, 99));
    await tick();
    expect(device.transmitted).toHaveLength(8);
    device.completeTransmits();
    await later;
    expect(writable).toBe(1);
    expect(device.transmitted.map((t) => t.frame[0])).toEqual([...Array.from({ length: 8 }, (_, i) => frameOf(60, i)[0]), frameOf(60, 99)[0]]);
  });

  it('§2.7.8.1: a transmit completion with a non-zero used length breaks the transmitq: PROTOCOL fault, then send throws PROTOCOL', async () => {
    const { device, driver, harness, freeBefore } = await setUp();
    const faults: DriverError[] = [];
    driver.onFault((error) => faults.push(error));
    device.transmitUsedLength = 70;
    expect(driver.send(frameOf(60))).toBe(true);
    expect(faults.map((f) => f.code)).toEqual(['PROTOCOL']);
    expect(driver.needsReset).toBe(true);
    expect(() => driver.send(frameOf(60))).toThrow(/PROTOCOL/);
    driver.reset();
    expect(harness.allocator.freeBytes).toBe(freeBefore);
  });

  it('CSUM: a header asking for a checksum needs VIRTIO_NET_F_CSUM', async () => {
    const hdr = { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6, numBuffers: 0 };
    const plain = await setUp();
    expect(() => plain.driver.transmit([frameOf(60)], { hdr })).toThrow(/VIRTIO_NET_F_CSUM/);
    const offload = await setUp(new ScriptedNetDevice({ features: featureBits(VIRTIO_F_VERSION_1, VIRTIO_NET_F_CSUM) }), { checksumOffload: true });
    expect(offload.driver.transmit([frameOf(60)], { hdr })).toBe(true);
    expect(offload.device.transmitted[0]!.hdr).toMatchObject({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 6, numBuffers: 0 });
  });

  it('multiqueue: flows spread over the transmitqs, each flow stays on one queue; a caller may pick the queue', async () => {
    const { device, driver } = await setUp(new ScriptedNetDevice({ maxPairs: 4 }));
    const udpFrame = (port: number) =>
      encodeEthernet({ destination: new Uint8Array(6), source: driver.mac, etherType: ETHERTYPE_IPV4, payload: encodeIpv4({ identification: 0, ttl: 64, protocol: IP_PROTOCOL_UDP, source: 1, destination: 2, payload: encodeUdp({ sourcePort: port, destinationPort: 9, data: new Uint8Array(4) }, 1, 2) }) });
    for (let port = 1000; port < 1064; port++) for (let k = 0; k < 2; k++) driver.send(udpFrame(port));
    const byFlow = new Map<number, Set<number>>();
    for (const t of device.transmitted) {
      const port = (t.frame[34]! << 8) | t.frame[35]!;
      byFlow.set(port, (byFlow.get(port) ?? new Set()).add(t.queue));
    }
    expect([...byFlow.values()].every((queues) => queues.size === 1)).toBe(true);
    expect(new Set(device.transmitted.map((t) => t.queue)).size).toBeGreaterThan(1);
    driver.transmit([frameOf(60)], { queue: 3 });
    expect(device.transmitted.at(-1)!.queue).toBe(7);
    expect(() => driver.transmit([frameOf(60)], { queue: 4 })).toThrow(/not in use/);
  });
});

describe('NetDriver: control queue (§5.1.6.5)', () => {
  it('promisc, allmulti, MAC address and MAC table commands carry the spec layouts and await the ack', async () => {
    const { device, driver } = await setUp();
    await driver.setPromiscuous(true);
    await driver.setAllMulticast(false);
    await driver.setMacAddress('02:00:00:00:00:09');
    await driver.setMacTable(['02:00:00:00:00:0a'], ['01:00:5e:00:00:01', '33:33:00:00:00:01']);
    expect(device.commands[0]).toEqual({ commandClass: VIRTIO_NET_CTRL_RX, command: 0, data: Uint8Array.of(1) });
    expect(device.commands[1]).toEqual({ commandClass: VIRTIO_NET_CTRL_RX, command: 1, data: Uint8Array.of(0) });
    expect(device.commands[2]).toEqual({ commandClass: VIRTIO_NET_CTRL_MAC, command: 1, data: Uint8Array.of(2, 0, 0, 0, 0, 9) });
    expect(device.commands[3]).toEqual({
      commandClass: VIRTIO_NET_CTRL_MAC,
      command: 0,
      data: Uint8Array.of(1, 0, 0, 0, 2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 1, 0, 0x5e, 0, 0, 1, 0x33, 0x33, 0, 0, 0, 1),
    });
    expect([...driver.mac]).toEqual([2, 0, 0, 0, 0, 9]);
  });

  it('VIRTIO_NET_ERR rejects with IO_ERROR and the MAC is not changed', async () => {
    const { device, driver } = await setUp();
    device.ackStatus = 1;
    await expect(driver.setMacAddress('02:00:00:00:00:09')).rejects.toMatchObject({ code: 'IO_ERROR', context: { status: 1 } });
    expect([...driver.mac]).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  });

  it('a control completion without the ack byte is PROTOCOL; one beyond the ack byte breaks the controlq (PROTOCOL fault, needsReset), never throws', async () => {
    const { device, driver, harness, freeBefore } = await setUp();
    device.controlUsedLength = 0;
    await expect(driver.setPromiscuous(true)).rejects.toMatchObject({ code: 'PROTOCOL' });
    expect(driver.needsReset).toBe(false);
    device.controlUsedLength = 2;
    const faults: DriverError[] = [];
    driver.onFault((error) => faults.push(error));
    await expect(driver.setAllMulticast(true)).rejects.toMatchObject({ code: 'PROTOCOL' });
    expect(faults.map((f) => f.context.queue)).toEqual([2]);
    expect(driver.needsReset).toBe(true);
    await expect(driver.setPromiscuous(false)).rejects.toMatchObject({ code: 'PROTOCOL' });
    driver.reset();
    expect(harness.allocator.freeBytes).toBe(freeBefore);
  });

  it('§5.1.6.5.5.1: "The driver MUST NOT set virtqueue_pairs to 0 or greater than max_virtqueue_pairs"', async () => {
    const { device, driver } = await setUp(new ScriptedNetDevice({ maxPairs: 2 }));
    await expect(driver.setQueuePairs(0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(driver.setQueuePairs(3)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await driver.setQueuePairs(1);
    expect(driver.queuePairs).toBe(1);
    expect(device.commands.map((c) => c.data[0])).toEqual([2, 1]);
  });

  it('the mac option is set through CTRL_MAC_ADDR at open', async () => {
    const { device, driver } = await setUp(new ScriptedNetDevice(), { mac: '02:aa:bb:cc:dd:ee' });
    expect(device.commands.at(-1)).toEqual({ commandClass: VIRTIO_NET_CTRL_MAC, command: 1, data: Uint8Array.of(2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee) });
    expect([...driver.mac]).toEqual([2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
  });
});

describe('NetDriver: reset', () => {
  it('§2.4: reset returns every buffer (receive, in-flight transmit, pooled) to the allocator; later calls fail DEVICE_RESET', async () => {
    const { harness, device, driver, freeBefore } = await setUp(new ScriptedNetDevice({ maxPairs: 2 }));
    device.holdTransmits = true;
    driver.send(frameOf(60));
    driver.send(frameOf(3000 > driver.mtu ? 1000 : 3000));
    device.deliver(frameOf(9000));
    expect(harness.allocator.freeBytes).toBeLessThan(freeBefore);
    driver.reset();
    expect(harness.allocator.freeBytes).toBe(freeBefore);
    expect(() => driver.send(frameOf(60))).toThrow(/DEVICE_RESET/);
    await expect(driver.setPromiscuous(true)).rejects.toMatchObject({ code: 'DEVICE_RESET' });
  });
});

describe('NetDriver + IpInterface: two model guests through connected devices', () => {
  it('ping and UDP between two drivers (split and packed rings)', async () => {
    const a = await setUp(new ScriptedNetDevice({ mac: [2, 0, 0, 0, 0, 1] }));
    const b = await setUp(new ScriptedNetDevice({ mac: [2, 0, 0, 0, 0, 2], packed: true }));
    a.device.onTransmit = (frame) => b.device.deliver(frame);
    b.device.onTransmit = (frame) => a.device.deliver(frame);
    const left = new IpInterface({ link: a.driver, address: '192.168.7.1' });
    const right = new IpInterface({ link: b.driver, address: '192.168.7.2' });
    const result = await left.ping('192.168.7.2', { count: 3, size: 1000 });
    expect(result.received).toBe(3);
    const socket = right.bindUdp(9);
    const client = left.bindUdp(5000);
    await client.sendTo('192.168.7.2', 9, new Uint8Array(1400).fill(5));
    const { value } = await socket.next();
    expect(value!.data.length).toBe(1400);
    expect(value).toMatchObject({ address: '192.168.7.1', port: 5000 });
  });
});
