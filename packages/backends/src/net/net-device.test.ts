import {
  VIRTIO_F_VERSION_1,
  VIRTIO_NET_CTRL_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE_ACK,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_NOBCAST,
  VIRTIO_NET_CTRL_RX_NOMULTI,
  VIRTIO_NET_CTRL_RX_NOUNI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_CTRL_VLAN,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_OK,
  VIRTIO_NET_S_ANNOUNCE,
  VIRTIO_NET_S_LINK_UP,
  decodeNetHdr,
  featureBit,
  featureBits,
  hasFeature,
  type Features,
  type VirtioDevice,
} from '@virtio-ts/device';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import { harness, settle } from '../testing/harness.js';
import { equalBytes } from '../testing/bytes.js';
import { NO_NET_OFFLOADS, type NetOffloads } from './net-backend.js';
import { NetDevice, type NetDeviceOptions } from './net-device.js';
import { RecordingNetBackend } from './recording-net-backend.js';
import { BROADCAST, OWN, PEER, concat, ctrlCommand, frameTo, hdr, macTable, partialUdpFrame, udpChecksumValid } from './net-test-frames.test-util.js';

const ALL_OFFLOADS: NetOffloads = { csum: true, tso4: true, tso6: true, ufo: true, ecn: true };
const microtask = () => new Promise<void>((resolve) => queueMicrotask(resolve));

function setup(options: Partial<NetDeviceOptions> & { backend?: RecordingNetBackend } = {}, features?: (offered: Features) => Features) {
  const backend = options.backend ?? new RecordingNetBackend({ maxQueuePairs: options.queuePairs ?? 1 });
  const device = new NetDevice({ ...options, backend });
  const h = harness(device, 8 << 20);
  const negotiated = features ? features(device.deviceFeatures) : device.deviceFeatures;
  h.activate(negotiated);
  const ctrlIndex = hasFeature(negotiated, VIRTIO_NET_F_MQ) ? 2 * device.queuePairs : 2;
  /** Offers a transmit chain (header + frame, split as given) on tx queue `pair`. */
  const transmit = (bytes: Uint8Array, split?: number[], pair = 0) => {
    const chain = h.builder.chain(h.builder.place(bytes, split), []);
    h.queues[2 * pair + 1]!.offer(chain);
    device.queueNotify(2 * pair + 1);
    return chain;
  };
  /** Offers a receive buffer of the given segment sizes on rx queue `pair`. */
  const rxBuffer = (split: number[], pair = 0) => {
    const writable = h.builder.reserve(split);
    const chain = h.builder.chain([], writable);
    h.queues[2 * pair]!.offer(chain);
    return { chain, writable, bytes: () => h.builder.bytesOf(writable) };
  };
  /** Sends a control command; returns the ack byte (or undefined without a used element). */
  const ctrl = (command: Uint8Array, split?: number[]) => {
    const ack = h.builder.reserve([1], 0xcc);
    const chain = h.builder.chain(h.builder.place(command, split), ack);
    const q = h.queues[ctrlIndex]!;
    const before = q.used.length;
    q.offer(chain);
    device.queueNotify(ctrlIndex);
    expect(q.used.length).toBe(before + 1);
    expect(q.used[before]).toEqual({ head: chain.head, length: 1 });
    return h.memory.readU8(ack[0]!.address);
  };
  const config = () => {
    const bytes = new Uint8Array(device.configSize);
    device.readConfig(0, bytes);
    const v = new DataView(bytes.buffer);
    return { mac: [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':'), status: v.getUint16(6, true), maxPairs: v.getUint16(8, true), mtu: v.getUint16(10, true) };
  };
  return { backend, device, h, negotiated, transmit, rxBuffer, ctrl, config, ctrlIndex, port: (i = 0) => backend.ports[i]! };
}

describe('virtio-net features (§5.1.3)', () => {
  it('5.1.3: offers MAC, MTU, STATUS, MRG_RXBUF and the control features, but no offload a plain back-end cannot honour', () => {
    const { device } = setup();
    const f = device.deviceFeatures;
    for (const bit of [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_GUEST_ANNOUNCE]) {
      expect(hasFeature(f, bit), `bit ${bit}`).toBe(true);
    }
    for (const bit of [VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_VLAN]) {
      expect(hasFeature(f, bit), `bit ${bit}`).toBe(false);
    }
    expect(device.queueMaxSizes).toEqual([256, 256, 256]);
  });

  it('offloads are offered only as the back-end honours them, and options narrow them further', () => {
    const full = new NetDevice({ backend: new RecordingNetBackend({ offloads: ALL_OFFLOADS }) }).deviceFeatures;
    for (const bit of [VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS]) {
      expect(hasFeature(full, bit), `bit ${bit}`).toBe(true);
    }
    // TSO without a checksum offload is useless (HOST_TSO4 requires CSUM): nothing offered.
    const noCsum = new NetDevice({ backend: new RecordingNetBackend({ offloads: { ...ALL_OFFLOADS, csum: false } }) }).deviceFeatures;
    expect(noCsum & featureBits(VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_HOST_ECN)).toBe(0n);
    // The back-end can take offloads but deliver none: HOST_* only.
    const txOnly = new NetDevice({ backend: new RecordingNetBackend({ offloads: ALL_OFFLOADS, rxOffloads: NO_NET_OFFLOADS }) }).deviceFeatures;
    expect(hasFeature(txOnly, VIRTIO_NET_F_HOST_TSO4)).toBe(true);
    expect(hasFeature(txOnly, VIRTIO_NET_F_GUEST_CSUM)).toBe(false);
    const narrowed = new NetDevice({ backend: new RecordingNetBackend({ offloads: ALL_OFFLOADS }), offloads: { tso6: false, ufo: false } }).deviceFeatures;
    expect(hasFeature(narrowed, VIRTIO_NET_F_HOST_TSO4)).toBe(true);
    expect(hasFeature(narrowed, VIRTIO_NET_F_HOST_TSO6)).toBe(false);
    expect(hasFeature(narrowed, VIRTIO_NET_F_GUEST_UFO)).toBe(false);
  });

  it('5.1.2: MQ only with several pairs on a multi-port back-end; queues rx0,tx0,...,ctrl', () => {
    const single = new NetDevice({ backend: new RecordingNetBackend({ maxQueuePairs: 4 }) });
    expect(hasFeature(single.deviceFeatures, VIRTIO_NET_F_MQ)).toBe(false);
    const multi = new NetDevice({ backend: new RecordingNetBackend({ maxQueuePairs: 4 }), queuePairs: 3, queueSize: 64 });
    expect(hasFeature(multi.deviceFeatures, VIRTIO_NET_F_MQ)).toBe(true);
    expect(multi.queueMaxSizes).toEqual([64, 64, 64, 64, 64, 64, 64]);
    expect((JSON.parse(JSON.stringify(multi.metrics)) as { queues: { name: string }[] }).queues.map((q) => q.name)).toEqual(['rx0', 'tx0', 'rx1', 'tx1', 'rx2', 'tx2', 'ctrl']);
    expect(() => new NetDevice({ backend: new RecordingNetBackend({ maxQueuePairs: 2 }), queuePairs: 3 })).toThrow(BackendError);
  });

  it('controlQueue: false declares exactly 2 x pairs queues and offers no CTRL_* feature', () => {
    const device = new NetDevice({ backend: new RecordingNetBackend({ maxQueuePairs: 2, offloads: ALL_OFFLOADS }), queuePairs: 2, controlQueue: false });
    expect(device.queueMaxSizes).toHaveLength(4);
    const f = device.deviceFeatures;
    for (const bit of [VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, VIRTIO_NET_F_CTRL_VLAN]) {
      expect(hasFeature(f, bit), `bit ${bit}`).toBe(false);
    }
    // MQ and GUEST_ANNOUNCE stay (QEMU's vhost-user-net passes them through and runs the
    // control queue itself), and are accepted without CTRL_VQ.
    expect(hasFeature(f, VIRTIO_NET_F_MQ)).toBe(true);
    expect(hasFeature(f, VIRTIO_NET_F_GUEST_ANNOUNCE)).toBe(true);
    expect(device.validateFeatures(f)).toBe(true);
  });

  const requirements: [string, number, number[]][] = [
    ['GUEST_TSO4 requires GUEST_CSUM', VIRTIO_NET_F_GUEST_TSO4, [VIRTIO_NET_F_GUEST_CSUM]],
    ['GUEST_TSO6 requires GUEST_CSUM', VIRTIO_NET_F_GUEST_TSO6, [VIRTIO_NET_F_GUEST_CSUM]],
    ['GUEST_ECN requires GUEST_TSO4 or GUEST_TSO6', VIRTIO_NET_F_GUEST_ECN, [VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6]],
    ['GUEST_UFO requires GUEST_CSUM', VIRTIO_NET_F_GUEST_UFO, [VIRTIO_NET_F_GUEST_CSUM]],
    ['HOST_TSO4 requires CSUM', VIRTIO_NET_F_HOST_TSO4, [VIRTIO_NET_F_CSUM]],
    ['HOST_TSO6 requires CSUM', VIRTIO_NET_F_HOST_TSO6, [VIRTIO_NET_F_CSUM]],
    ['HOST_ECN requires HOST_TSO4 or HOST_TSO6', VIRTIO_NET_F_HOST_ECN, [VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6]],
    ['HOST_UFO requires CSUM', VIRTIO_NET_F_HOST_UFO, [VIRTIO_NET_F_CSUM]],
    ['CTRL_RX requires CTRL_VQ', VIRTIO_NET_F_CTRL_RX, [VIRTIO_NET_F_CTRL_VQ]],
    ['CTRL_VLAN requires CTRL_VQ', VIRTIO_NET_F_CTRL_VLAN, [VIRTIO_NET_F_CTRL_VQ]],
    ['GUEST_ANNOUNCE requires CTRL_VQ', VIRTIO_NET_F_GUEST_ANNOUNCE, [VIRTIO_NET_F_CTRL_VQ]],
    ['MQ requires CTRL_VQ', VIRTIO_NET_F_MQ, [VIRTIO_NET_F_CTRL_VQ]],
    ['CTRL_MAC_ADDR requires CTRL_VQ', VIRTIO_NET_F_CTRL_MAC_ADDR, [VIRTIO_NET_F_CTRL_VQ]],
  ];
  for (const [rule, feature, requires] of requirements) {
    it(`5.1.3.1: ${rule}`, () => {
      const device = new NetDevice({ backend: new RecordingNetBackend({ maxQueuePairs: 2, offloads: ALL_OFFLOADS }), queuePairs: 2 });
      const everything = device.deviceFeatures;
      expect(device.validateFeatures(everything)).toBe(true);
      expect(device.validateFeatures(everything & ~featureBits(...requires))).toBe(false);
      // Each alternative alone satisfies it.
      for (const r of requires) {
        const others = requires.filter((x) => x !== r);
        const f = (everything & ~featureBits(...others)) | featureBit(r) | featureBit(feature);
        // Dropping the alternatives may break other rules (ECN needs TSO, TSO needs CSUM): only this rule matters.
        const blockers = requirements.filter(([, g, req]) => g !== feature && hasFeature(f, g) && !req.some((x) => hasFeature(f, x))).map(([, g]) => g);
        expect(device.validateFeatures(f & ~featureBits(...blockers))).toBe(true);
      }
    });
  }

  it('rejects options out of range with INVALID_OPTION', () => {
    const backend = new RecordingNetBackend();
    for (const options of [{ mac: '01:00:5e:00:00:01' }, { mac: 'nope' }, { mtu: 67 }, { mtu: 9000 }, { queueSize: 100 }, { queuePairs: 0 }]) {
      expect(() => new NetDevice({ backend, ...options }), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });
});

describe('virtio-net config space (§5.1.4)', () => {
  it('5.1.4: mac, status (LINK_UP), max_virtqueue_pairs and mtu, little-endian, readable at any offset', () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 4, mtu: 9000 });
    const { device, config } = setup({ backend, queuePairs: 3, mac: '02:11:22:33:44:55', mtu: 1500 });
    expect(config()).toEqual({ mac: '02:11:22:33:44:55', status: VIRTIO_NET_S_LINK_UP, maxPairs: 3, mtu: 1500 });
    const two = new Uint8Array(2);
    device.readConfig(10, two);
    expect([...two]).toEqual([1500 & 0xff, 1500 >> 8]);
    (device as VirtioDevice).writeConfig(0, Uint8Array.of(0xff));
    expect(config().mac).toBe('02:11:22:33:44:55');
    expect(device.metrics.configWrites).toBe(1);
  });

  it('5.1.4: the MTU defaults to the back-end MTU (68..65535)', () => {
    expect(new NetDevice({ backend: new RecordingNetBackend({ mtu: 65520 }) }).mtu).toBe(65520);
  });
});

describe('virtio-net link status', () => {
  it('setLinkUp(false) clears VIRTIO_NET_S_LINK_UP and sends a configuration change notification when STATUS is negotiated', () => {
    const { device, h, config, rxBuffer, port } = setup();
    const generation = device.configGeneration;
    device.setLinkUp(false);
    expect(config().status & VIRTIO_NET_S_LINK_UP).toBe(0);
    expect(h.configInterrupts.count).toBe(1);
    expect(device.configGeneration).not.toBe(generation);
    // While down, frames for the guest are dropped (and counted), buffers untouched.
    rxBuffer([2048]);
    expect(port().deliver(frameTo(OWN, 60))).toBe(true);
    expect(h.queues[0]!.used).toHaveLength(0);
    expect(device.metrics.faults.RX_LINK_DOWN).toBe(1);
    device.setLinkUp(true);
    expect(config().status & VIRTIO_NET_S_LINK_UP).toBe(VIRTIO_NET_S_LINK_UP);
    expect(h.configInterrupts.count).toBe(2);
    device.setLinkUp(true); // no change, no interrupt
    expect(h.configInterrupts.count).toBe(2);
  });

  it('without STATUS negotiated, a link change sends no interrupt', () => {
    const { device, h } = setup({}, (f) => f & ~featureBit(VIRTIO_NET_F_STATUS));
    device.setLinkUp(false);
    expect(h.configInterrupts.count).toBe(0);
  });
});

describe('virtio-net transmit (§5.1.6.2)', () => {
  it('5.1.6.2: sends the frame without its 12-byte header and returns the chain with used length 0', async () => {
    const { transmit, h, port, device } = setup();
    const frame = frameTo(PEER, 100);
    const chain = transmit(concat(hdr(), frame));
    expect(port().sent).toHaveLength(1);
    expect(equalBytes(port().sent[0]!.bytes, frame)).toBe(true);
    expect(port().sent[0]!.hdr).toBeUndefined();
    expect(h.queues[1]!.used).toEqual([{ head: chain.head, length: 0 }]);
    expect(h.queueInterrupts).toEqual([1]);
    expect(device.metrics.queues[1]).toMatchObject({ frames: 1, bytes: 100 });
    await microtask();
  });

  it('H7/H14: a header split 1 + 11 and a frame in 1-byte descriptors are sent byte-exact', () => {
    const { transmit, port } = setup();
    const frame = frameTo(PEER, 64, 9);
    transmit(concat(hdr(), frame), [1, 11, ...Array.from({ length: 64 }, () => 1)]);
    expect(equalBytes(port().sent[0]!.bytes, frame)).toBe(true);
  });

  it('several chains in one kick: one used notification for the batch', () => {
    const { h, port, device, builder } = { ...setup(), builder: undefined };
    void builder;
    for (let i = 0; i < 5; i++) h.queues[1]!.offer(h.builder.chain(h.builder.place(concat(hdr(), frameTo(PEER, 60, i))), []));
    device.queueNotify(1);
    expect(port().sent).toHaveLength(5);
    expect(h.queues[1]!.used).toHaveLength(5);
    expect(h.queueInterrupts).toEqual([1]);
  });

  const hostile: [string, (s: ReturnType<typeof setup>) => Uint8Array, string][] = [
    ['a chain shorter than the header', () => new Uint8Array(11), 'TX_SHORT_HEADER'],
    ['a frame shorter than an Ethernet header', () => concat(hdr(), new Uint8Array(13)), 'TX_RUNT'],
    ['a frame longer than MTU + headers without GSO', () => concat(hdr(), frameTo(PEER, 1500 + 14 + 4 + 1)), 'TX_OVERSIZE'],
    ['GSO TCPv4 on a device without HOST_TSO4', () => concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 }), frameTo(PEER, 200)), 'TX_BAD_GSO'],
    ['GSO UDP without HOST_UFO', () => concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_UDP, gsoSize: 1000, csumStart: 34, csumOffset: 6 }), frameTo(PEER, 200)), 'TX_BAD_GSO'],
    ['an unknown gso_type', () => concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: 2, gsoSize: 1000, csumStart: 34, csumOffset: 6 }), frameTo(PEER, 200)), 'TX_BAD_GSO'],
    ['the ECN bit without HOST_ECN', () => concat(hdr({ gsoType: VIRTIO_NET_HDR_GSO_NONE | VIRTIO_NET_HDR_GSO_ECN }), frameTo(PEER, 200)), 'TX_BAD_GSO'],
    ['csum_start outside the frame', () => concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 200, csumOffset: 0 }), frameTo(PEER, 200)), 'TX_BAD_CSUM'],
    ['csum_start + csum_offset past the end of the frame', () => concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 100, csumOffset: 99 }), frameTo(PEER, 200)), 'TX_BAD_CSUM'],
    ['csum_offset 0xffff', () => concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 0xffff }), frameTo(PEER, 200)), 'TX_BAD_CSUM'],
  ];
  for (const [what, build, fault] of hostile) {
    it(`5.1.6.2.2 (hostile header): ${what} is dropped as ${fault}, its chain still returned`, () => {
      const s = setup();
      const chain = s.transmit(build(s));
      expect(s.port().sent).toHaveLength(0);
      expect(s.h.queues[1]!.used).toEqual([{ head: chain.head, length: 0 }]);
      expect(s.device.metrics.faults[fault as keyof typeof s.device.metrics.faults]).toBe(1);
      expect(s.device.metrics.queues[1]!.drops).toBe(1);
      expect(s.h.needsReset).toEqual([]);
      // The queue keeps working.
      s.transmit(concat(hdr(), frameTo(PEER, 60)));
      expect(s.port().sent).toHaveLength(1);
    });
  }

  it('5.1.6.2.2: hdr_len past the frame on a GSO frame (HOST_TSO4 negotiated) is dropped', () => {
    const s = setup({ backend: new RecordingNetBackend({ offloads: ALL_OFFLOADS }) });
    s.transmit(concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: 5000, csumStart: 34, csumOffset: 16 }), frameTo(PEER, 3000)));
    expect(s.device.metrics.faults.TX_BAD_GSO).toBe(1);
    // gso_size 0 too.
    s.transmit(concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV6, gsoSize: 0, hdrLen: 74, csumStart: 54, csumOffset: 16 }), frameTo(PEER, 3000)));
    expect(s.device.metrics.faults.TX_BAD_GSO).toBe(2);
    // GSO without NEEDS_CSUM: "the driver MUST also set the VIRTIO_NET_HDR_F_NEEDS_CSUM bit".
    s.transmit(concat(hdr({ gsoType: VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1448, hdrLen: 54 }), frameTo(PEER, 3000)));
    expect(s.device.metrics.faults.TX_BAD_GSO).toBe(3);
    expect(s.port().sent).toHaveLength(0);
  });

  it('5.1.6.2.2: unknown flag bits are ignored; a plain frame reaches the back-end without a header', () => {
    const s = setup();
    s.transmit(concat(hdr({ flags: 0xf0 }), frameTo(PEER, 80)));
    expect(s.port().sent).toHaveLength(1);
    expect(s.port().sent[0]!.hdr).toBeUndefined();
  });

  it('NEEDS_CSUM without VIRTIO_NET_F_CSUM: the device completes the checksum itself instead of sending a wrong frame', () => {
    const s = setup();
    const { frame, csumStart, csumOffset } = partialUdpFrame(301);
    expect(udpChecksumValid(frame)).toBe(false);
    s.transmit(concat(hdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart, csumOffset }), frame), [5, 7, 100, 200, frame.length - 300]);
    const sent = s.port().sent[0]!;
    expect(sent.hdr).toBeUndefined();
    expect(udpChecksumValid(sent.bytes)).toBe(true);
    expect(s.device.metrics.softwareChecksums).toBe(1);
    // The guest's (device-readable) buffer was not written.
    expect(udpChecksumValid(frame)).toBe(false);
  });

  it('with CSUM and HOST_TSO4 negotiated and a back-end that takes them, the header goes to the back-end', () => {
    const s = setup({ backend: new RecordingNetBackend({ offloads: ALL_OFFLOADS }) });
    const h = { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM | 0x02, gsoType: VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, gsoSize: 1448, hdrLen: 66, csumStart: 34, csumOffset: 16 };
    s.transmit(concat(hdr(h), frameTo(PEER, 20000)));
    // DATA_VALID (which the driver MUST NOT set) is not passed on.
    expect(s.port().sent[0]!.hdr).toEqual({ ...h, flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, numBuffers: 0 });
  });

  it('back-pressure: send() === false keeps the chain; writable() resumes in order', () => {
    const s = setup();
    s.port().blocked = true;
    s.transmit(concat(hdr(), frameTo(PEER, 60, 1)));
    s.transmit(concat(hdr(), frameTo(PEER, 60, 2)));
    expect(s.h.queues[1]!.used).toHaveLength(0);
    expect(s.h.queues[1]!.inFlight).toBe(1); // one popped and held, the other still available
    expect(s.h.queues[1]!.available).toBe(1);
    expect(s.device.metrics.txStalls).toBeGreaterThan(0);
    s.port().unblock();
    expect(s.port().sent.map((f) => f.bytes[20])).toEqual([frameTo(PEER, 60, 1)[20], frameTo(PEER, 60, 2)[20]]);
    expect(s.h.queues[1]!.used).toHaveLength(2);
  });

  it('a back-end that calls writable() from inside a refused send() does not reorder frames', () => {
    const s = setup();
    const port = s.port();
    const original = port.send.bind(port);
    let refusals = 1;
    port.send = (frame, h) => {
      if (refusals > 0) {
        refusals--;
        port.receiver?.writable(); // re-entrant: the device must not pop the next chain now
        return false;
      }
      return original(frame, h);
    };
    s.h.queues[1]!.offer(s.h.builder.chain(s.h.builder.place(concat(hdr(), frameTo(PEER, 60, 1))), []));
    s.h.queues[1]!.offer(s.h.builder.chain(s.h.builder.place(concat(hdr(), frameTo(PEER, 60, 2))), []));
    s.device.queueNotify(1);
    expect(port.sent.map((f) => f.bytes[20])).toEqual([frameTo(PEER, 60, 1)[20], frameTo(PEER, 60, 2)[20]]);
    expect(s.h.queues[1]!.used).toHaveLength(2);
  });

  it('with the link down, transmitted frames are returned unsent', () => {
    const s = setup();
    s.device.setLinkUp(false);
    const chain = s.transmit(concat(hdr(), frameTo(PEER, 60)));
    expect(s.port().sent).toHaveLength(0);
    expect(s.h.queues[1]!.used).toEqual([{ head: chain.head, length: 0 }]);
  });
});

describe('virtio-net receive (§5.1.6.3, §5.1.6.4)', () => {
  it('5.1.6.3.2: without MRG_RXBUF the header and frame go in one buffer, num_buffers 1', async () => {
    const s = setup({}, (f) => f & ~featureBit(VIRTIO_NET_F_MRG_RXBUF));
    const buffer = s.rxBuffer([6, 6, 1600]);
    const frame = frameTo(OWN, 90);
    expect(s.port().deliver(frame)).toBe(true);
    expect(s.h.queues[0]!.used).toEqual([{ head: buffer.chain.head, length: 12 + 90 }]);
    const bytes = buffer.bytes();
    expect(decodeNetHdr(bytes)).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 1 });
    expect(equalBytes(bytes.subarray(12, 102), frame)).toBe(true);
    expect(bytes[102]).toBe(0xcc); // nothing past the frame
    expect(s.h.builder.guardsIntact()).toBe(true);
    expect(s.h.queueInterrupts).toEqual([0]); // receiveBatchEnd
  });

  it('5.1.6.4.1: with MRG_RXBUF a frame spans buffers, each but the last used completely, num_buffers counts them', () => {
    const s = setup();
    const b = [s.rxBuffer([100]), s.rxBuffer([50, 50]), s.rxBuffer([1000])];
    const frame = frameTo(OWN, 300, 4);
    expect(s.port().deliver(frame)).toBe(true);
    expect(s.h.queues[0]!.used).toEqual([
      { head: b[0]!.chain.head, length: 100 },
      { head: b[1]!.chain.head, length: 100 },
      { head: b[2]!.chain.head, length: 12 + 300 - 200 },
    ]);
    const all = concat(b[0]!.bytes(), b[1]!.bytes(), b[2]!.bytes().subarray(0, 112));
    expect(decodeNetHdr(all).numBuffers).toBe(3);
    expect(equalBytes(all.subarray(12), frame)).toBe(true);
    expect(s.h.queueInterrupts).toEqual([0]); // one interrupt for the three used buffers
  });

  it('back-pressure: too few buffers for a merged frame consumes none of them; the frame arrives whole after the kick', () => {
    const s = setup();
    const first = s.rxBuffer([100]);
    const frame = frameTo(OWN, 300, 5);
    expect(s.port().deliver(frame)).toBe(false);
    expect(s.h.queues[0]!.used).toHaveLength(0);
    expect(s.device.heldRxBuffers).toBe(1);
    expect(s.device.metrics.rxStalls).toBe(1);
    const second = s.rxBuffer([400]);
    s.device.queueNotify(0);
    expect(s.port().resumeCount).toBe(1);
    expect(s.port().backlog).toHaveLength(0);
    expect(s.h.queues[0]!.used.map((u) => u.head)).toEqual([first.chain.head, second.chain.head]);
    expect(equalBytes(concat(first.bytes(), second.bytes()).subarray(12, 312), frame)).toBe(true);
  });

  it('releaseHeldRxBuffers() returns held buffers empty; the waiting frame still arrives after the next kick', () => {
    const s = setup();
    const first = s.rxBuffer([100]);
    const frame = frameTo(OWN, 300, 5);
    expect(s.port().deliver(frame)).toBe(false);
    expect(s.h.queues[0]!.inFlight).toBe(1);
    expect(s.device.releaseHeldRxBuffers()).toBe(1);
    expect(s.h.queues[0]!.used).toEqual([{ head: first.chain.head, length: 0 }]);
    expect(s.h.queues[0]!.inFlight).toBe(0);
    expect(s.device.metrics.releasedRxBuffers).toBe(1);
    const big = s.rxBuffer([400]);
    s.device.queueNotify(0);
    expect(s.h.queues[0]!.used.at(-1)).toEqual({ head: big.chain.head, length: 312 });
  });

  it('no buffers at all: receive() returns false and nothing is consumed', () => {
    const s = setup();
    expect(s.port().deliver(frameTo(OWN, 60))).toBe(false);
    expect(s.h.queues[0]!.inFlight).toBe(0);
    s.device.queueNotify(0); // a kick without buffers: resumes, still starved
    expect(s.port().backlog).toHaveLength(1);
  });

  it('5.1.6.3.1 (H9): without MRG_RXBUF a buffer shorter than the frame is not overrun: the frame is dropped and the buffer kept for the next frame', () => {
    const s = setup({}, (f) => f & ~featureBit(VIRTIO_NET_F_MRG_RXBUF));
    const small = s.rxBuffer([12 + 100]);
    expect(s.port().deliver(frameTo(OWN, 500))).toBe(true);
    expect(s.device.metrics.faults.RX_BUFFER_TOO_SMALL).toBe(1);
    expect(s.h.queues[0]!.used).toHaveLength(0);
    expect(s.h.builder.guardsIntact()).toBe(true);
    const frame = frameTo(OWN, 80);
    expect(s.port().deliver(frame)).toBe(true);
    expect(s.h.queues[0]!.used).toEqual([{ head: small.chain.head, length: 92 }]);
  });

  it('a receive buffer with device-readable descriptors or no room for a header is returned with length 0 and counted', () => {
    const s = setup();
    const readable = s.h.builder.chain(s.h.builder.place(new Uint8Array(20)), s.h.builder.reserve([2000]));
    s.h.queues[0]!.offer(readable);
    const tiny = s.rxBuffer([8]);
    const good = s.rxBuffer([2000]);
    expect(s.port().deliver(frameTo(OWN, 60))).toBe(true);
    expect(s.h.queues[0]!.used).toEqual([
      { head: readable.head, length: 0 },
      { head: tiny.chain.head, length: 0 },
      { head: good.chain.head, length: 72 },
    ]);
    expect(s.device.metrics.faults.RX_BAD_BUFFER).toBe(2);
  });

  it('5.1.4.1: with VIRTIO_NET_F_MTU a frame longer than mtu + Ethernet header is not passed', () => {
    const s = setup({ backend: new RecordingNetBackend({ mtu: 9000 }), mtu: 1500 });
    s.rxBuffer([20000]);
    expect(s.port().deliver(frameTo(OWN, 1515))).toBe(true);
    expect(s.device.metrics.faults.RX_OVERSIZE).toBe(1);
    expect(s.port().deliver(frameTo(OWN, 1514))).toBe(true);
    expect(s.h.queues[0]!.used).toHaveLength(1);
  });

  it('5.1.6.4.1: without GUEST_CSUM a partial checksum from the back-end is completed by the device (flags stay 0)', () => {
    const backend = new RecordingNetBackend({ offloads: ALL_OFFLOADS });
    const s = setup({ backend }, (f) => f & ~GUEST_ALL);
    const buffer = s.rxBuffer([2048]);
    const { frame, csumStart, csumOffset } = partialUdpFrame(100);
    const own = frame.slice();
    own.set(frameTo(OWN, 14).subarray(0, 6), 0);
    s.port().deliver(own, { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart, csumOffset, numBuffers: 1 });
    const bytes = buffer.bytes();
    expect(bytes[0]).toBe(0);
    expect(udpChecksumValid(bytes.subarray(12, 12 + own.length))).toBe(true);
    expect(backend.guestOffloads.at(-1)).toEqual(NO_NET_OFFLOADS);
  });

  it('5.1.6.4.1: with GUEST_CSUM/GUEST_TSO4 the back-end header is passed; a GSO type the guest did not enable is dropped', () => {
    const backend = new RecordingNetBackend({ offloads: ALL_OFFLOADS });
    const s = setup({ backend }, (f) => f & ~featureBit(VIRTIO_NET_F_GUEST_TSO6) & ~featureBit(VIRTIO_NET_F_GUEST_ECN));
    expect(backend.guestOffloads.at(-1)).toEqual({ csum: true, tso4: true, tso6: false, ufo: true, ecn: false });
    const buffer = s.rxBuffer([70000]);
    const tso = { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: 1 };
    s.port().deliver(frameTo(OWN, 30000), tso);
    expect(decodeNetHdr(buffer.bytes())).toEqual(tso);
    s.rxBuffer([70000]);
    s.port().deliver(frameTo(OWN, 30000), { ...tso, gsoType: VIRTIO_NET_HDR_GSO_TCPV6 });
    expect(s.device.metrics.faults.RX_BAD_OFFLOAD).toBe(1);
    expect(s.h.queues[0]!.used).toHaveLength(1);
  });
});

const GUEST_ALL = featureBits(VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);

describe('virtio-net receive filtering (§5.1.6.5.1, §5.1.6.5.2)', () => {
  function delivered(s: ReturnType<typeof setup>, dst: string): boolean {
    s.rxBuffer([2048]);
    const before = s.h.queues[0]!.used.length;
    s.port().deliver(frameTo(dst, 60));
    const got = s.h.queues[0]!.used.length > before;
    return got;
  }
  const MCAST = '01:00:5e:00:00:fb';
  const OTHER_MCAST = '33:33:00:00:00:01';

  it('after reset: own MAC, broadcast and multicast are accepted, other unicast dropped (§5.1.6.5.2 SHOULD drop)', () => {
    const s = setup();
    expect(delivered(s, OWN)).toBe(true);
    expect(delivered(s, BROADCAST)).toBe(true);
    expect(delivered(s, MCAST)).toBe(true);
    expect(delivered(s, PEER)).toBe(false);
    expect(s.device.metrics.filtered).toBe(1);
  });

  it('5.1.6.5.1: PROMISC receives everything, even with NOUNI/NOBCAST on', () => {
    const s = setup();
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOUNI, Uint8Array.of(1)))).toBe(VIRTIO_NET_OK);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, Uint8Array.of(1)))).toBe(VIRTIO_NET_OK);
    expect(delivered(s, OWN)).toBe(false);
    expect(delivered(s, BROADCAST)).toBe(false);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1)))).toBe(VIRTIO_NET_OK);
    for (const dst of [OWN, PEER, BROADCAST, MCAST]) expect(delivered(s, dst), dst).toBe(true);
  });

  it('5.1.6.5.2: ALLMULTI off leaves only the multicast table; MAC_TABLE_SET replaces both tables before its buffer is used', () => {
    const s = setup();
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(0)))).toBe(VIRTIO_NET_OK);
    expect(delivered(s, MCAST)).toBe(false);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, macTable([PEER], [MCAST])), [2, 3, 5, 12])).toBe(VIRTIO_NET_OK);
    expect(s.device.rxFilter).toMatchObject({ unicast: [PEER], multicast: [MCAST], allmulti: false });
    expect(delivered(s, MCAST)).toBe(true);
    expect(delivered(s, OTHER_MCAST)).toBe(false);
    expect(delivered(s, PEER)).toBe(true);
    expect(delivered(s, BROADCAST)).toBe(true);
    // NOMULTI wins over ALLMULTI, but not over broadcast.
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(1)));
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOMULTI, Uint8Array.of(1)));
    expect(delivered(s, MCAST)).toBe(false);
    expect(delivered(s, BROADCAST)).toBe(true);
  });

  it('more than 64 addresses overflow into "accept all of that kind" (the footnote of §5.1.6.5.2)', () => {
    const s = setup();
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, Uint8Array.of(0)));
    const many = Array.from({ length: 65 }, (_, i) => `01:00:5e:00:01:${i.toString(16).padStart(2, '0')}`);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, macTable([], many)))).toBe(VIRTIO_NET_OK);
    expect(delivered(s, OTHER_MCAST)).toBe(true);
    expect(delivered(s, PEER)).toBe(false);
  });
});

describe('virtio-net control queue (§5.1.6.5)', () => {
  it('5.1.6.5: a command without an ack byte is returned with length 0; a short command is answered ERR', () => {
    const s = setup();
    const q = s.h.queues[2]!;
    const noAck = s.h.builder.chain(s.h.builder.place(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1))), []);
    q.offer(noAck);
    s.device.queueNotify(2);
    expect(q.used).toEqual([{ head: noAck.head, length: 0 }]);
    expect(s.device.rxFilter.promisc).toBe(false);
    expect(s.ctrl(Uint8Array.of(VIRTIO_NET_CTRL_RX))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1, 0)))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(2)))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_VLAN, 0, Uint8Array.of(1, 0)))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(0xff, 0xff))).toBe(VIRTIO_NET_ERR);
    expect(s.device.metrics.faults).toMatchObject({ CTRL_BAD_CHAIN: 2, CTRL_BAD_DATA: 3, CTRL_UNSUPPORTED: 2 });
  });

  it('5.1.6.5.1: RX_EXTRA commands are refused when CTRL_RX_EXTRA was not negotiated', () => {
    const s = setup({}, (f) => f & ~featureBit(VIRTIO_NET_F_CTRL_RX_EXTRA));
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOUNI, Uint8Array.of(1)))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1)))).toBe(VIRTIO_NET_OK);
  });

  it('5.1.6.5.2 (hostile MAC_TABLE_SET): counts that do not match the data are refused and the table is unchanged', () => {
    const s = setup();
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, macTable([PEER], [])));
    const cases = [
      macTable([], [], { unicast: 0xffff_ffff }),
      macTable([PEER], [], { multicast: 0xffff_ffff }),
      macTable([PEER], [], { unicast: 2 }),
      macTable([PEER, PEER], [], { unicast: 1 }),
      macTable([], []).subarray(0, 7),
      concat(macTable([], []), Uint8Array.of(0)),
      new Uint8Array(0),
    ];
    for (const data of cases) expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, data))).toBe(VIRTIO_NET_ERR);
    expect(s.device.rxFilter.unicast).toEqual([PEER]);
  });

  it('property: MAC_TABLE_SET with arbitrary bytes never throws, answers OK only for well-formed tables', () => {
    const s = setup();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (data) => {
        const ack = s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, data));
        const v = new DataView(data.buffer, data.byteOffset, data.length);
        let wellFormed = false;
        if (data.length >= 8) {
          const a = v.getUint32(0, true);
          if (4 + 6 * a + 4 <= data.length) wellFormed = 4 + 6 * a + 4 + 6 * v.getUint32(4 + 6 * a, true) === data.length;
        }
        expect(ack).toBe(wellFormed ? VIRTIO_NET_OK : VIRTIO_NET_ERR);
      }),
      { numRuns: 200 },
    );
    expect(s.h.needsReset).toEqual([]);
  });

  it('5.1.6.5.2: MAC_ADDR_SET updates config mac before the command is used; a group address is refused', () => {
    const s = setup();
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, Uint8Array.of(2, 0, 0, 0, 0, 9)))).toBe(VIRTIO_NET_OK);
    expect(s.config().mac).toBe('02:00:00:00:00:09');
    expect(s.device.mac).toBe('02:00:00:00:00:09');
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, Uint8Array.of(1, 0, 0, 0, 0, 9)))).toBe(VIRTIO_NET_ERR);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, Uint8Array.of(2, 0, 0, 0, 0)))).toBe(VIRTIO_NET_ERR);
    // The filter follows the new address.
    s.rxBuffer([2048]);
    s.port().deliver(frameTo('02:00:00:00:00:09', 60));
    expect(s.h.queues[0]!.used).toHaveLength(1);
    // Reset restores the configured MAC.
    s.device.reset();
    expect(s.config().mac).toBe(OWN);
  });

  it('5.1.6.5.5: VQ_PAIRS_SET accepts 1..max_virtqueue_pairs; frames arriving on port i go to receiveq i; unused pairs are not touched', () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 3 });
    const s = setup({ backend, queuePairs: 3 });
    expect(s.ctrlIndex).toBe(6);
    // "After initialization of reset, the device MUST queue packets only on receiveq1".
    expect(backend.ports.map((p) => p.receiver !== undefined)).toEqual([true, false, false]);
    const pairs = (n: number) => s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(n & 0xff, n >> 8)));
    expect(pairs(0)).toBe(VIRTIO_NET_ERR);
    expect(pairs(4)).toBe(VIRTIO_NET_ERR);
    expect(pairs(0x8000)).toBe(VIRTIO_NET_ERR);
    expect(pairs(3)).toBe(VIRTIO_NET_OK);
    expect(s.device.activeQueuePairs).toBe(3);
    expect(backend.ports.map((p) => p.receiver !== undefined)).toEqual([true, true, true]);
    const b1 = s.rxBuffer([2048], 1);
    s.port(1).deliver(frameTo(OWN, 70));
    expect(s.h.queues[2]!.used).toEqual([{ head: b1.chain.head, length: 82 }]);
    s.transmit(concat(hdr(), frameTo(PEER, 60)), undefined, 2);
    expect(s.port(2).sent).toHaveLength(1);
    expect(pairs(1)).toBe(VIRTIO_NET_OK);
    expect(backend.ports.map((p) => p.receiver !== undefined)).toEqual([true, false, false]);
    // A kick on a queue of an unused pair is ignored: its buffers stay available.
    s.transmit(concat(hdr(), frameTo(PEER, 60)), undefined, 2);
    expect(s.port(2).sent).toHaveLength(1);
    expect(s.h.queues[5]!.available).toBe(1);
  });

  it('5.1.2: without MQ negotiated the control queue is queue 2 even when more pairs are declared', () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 2 });
    const s = setup({ backend, queuePairs: 2 }, (f) => f & ~featureBit(VIRTIO_NET_F_MQ));
    expect(s.ctrlIndex).toBe(2);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1)))).toBe(VIRTIO_NET_OK);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0)))).toBe(VIRTIO_NET_ERR);
  });

  it('5.1.6.5.6: GUEST_OFFLOADS_SET enables only negotiated offloads and tells the back-end', () => {
    const backend = new RecordingNetBackend({ offloads: ALL_OFFLOADS });
    const s = setup({ backend }, (f) => f & ~featureBit(VIRTIO_NET_F_GUEST_UFO));
    const set = (bits: bigint) => {
      const data = new Uint8Array(8);
      new DataView(data.buffer).setBigUint64(0, bits, true);
      return s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, data));
    };
    expect(set(featureBit(VIRTIO_NET_F_GUEST_UFO))).toBe(VIRTIO_NET_ERR);
    expect(set(featureBit(40))).toBe(VIRTIO_NET_ERR);
    expect(set(featureBits(VIRTIO_NET_F_GUEST_CSUM))).toBe(VIRTIO_NET_OK);
    expect(backend.guestOffloads.at(-1)).toEqual({ csum: true, tso4: false, tso6: false, ufo: false, ecn: false });
    // A TSO frame is no longer delivered to this guest.
    s.rxBuffer([70000]);
    s.port().deliver(frameTo(OWN, 3000), { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: 1 });
    expect(s.device.metrics.faults.RX_BAD_OFFLOAD).toBe(1);
  });

  it('5.1.6.5.4: announce() sets VIRTIO_NET_S_ANNOUNCE with a config interrupt; ANNOUNCE_ACK clears it before the buffer is used', () => {
    const s = setup();
    expect(s.device.announce()).toBe(true);
    expect(s.config().status & VIRTIO_NET_S_ANNOUNCE).toBe(VIRTIO_NET_S_ANNOUNCE);
    expect(s.h.configInterrupts.count).toBe(1);
    expect(s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK))).toBe(VIRTIO_NET_OK);
    expect(s.config().status & VIRTIO_NET_S_ANNOUNCE).toBe(0);
    const noAnnounce = setup({}, (f) => f & ~featureBit(VIRTIO_NET_F_GUEST_ANNOUNCE));
    expect(noAnnounce.device.announce()).toBe(false);
    expect(noAnnounce.ctrl(ctrlCommand(VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK))).toBe(VIRTIO_NET_ERR);
  });
});

describe('virtio-net reset and saved state', () => {
  it('reset() detaches the ports, forgets held buffers and returns the filter to its defaults', () => {
    const s = setup();
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1)));
    s.rxBuffer([100]);
    s.port().deliver(frameTo(OWN, 300));
    expect(s.device.heldRxBuffers).toBe(1);
    s.device.reset();
    expect(s.port().receiver).toBeUndefined();
    expect(s.device.heldRxBuffers).toBe(0);
    expect(s.device.rxFilter).toMatchObject({ promisc: false, allmulti: true, unicast: [], multicast: [] });
  });

  it('saveState/restoreState round-trip the driver-visible state', () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 2, offloads: ALL_OFFLOADS });
    const s = setup({ backend, queuePairs: 2 });
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, Uint8Array.of(2, 0, 0, 0, 0, 7)));
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, macTable([PEER], ['01:00:5e:00:00:01'])));
    s.ctrl(ctrlCommand(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0)));
    s.device.setLinkUp(false);
    const saved = JSON.parse(JSON.stringify(s.device.saveState())) as unknown;
    const other = new NetDevice({ backend: new RecordingNetBackend({ maxQueuePairs: 2, offloads: ALL_OFFLOADS }), queuePairs: 2 });
    other.restoreState(saved);
    expect(other.saveState()).toEqual(saved);
    expect(other.mac).toBe('02:00:00:00:00:07');
    expect(other.linkUp).toBe(false);
    expect(other.activeQueuePairs).toBe(2);
  });

  it('H16: restoreState refuses hostile snapshots with INVALID_STATE and never half-applies them', () => {
    const s = setup();
    const good = s.device.saveState();
    const bad: unknown[] = [
      null,
      [],
      { ...good, version: 2 },
      { ...good, mac: '01:00:00:00:00:01' },
      { ...good, mac: 'x' },
      { ...good, queuePairs: 2 },
      { ...good, queuePairs: 0 },
      { ...good, guestOffloads: -1 },
      { ...good, guestOffloads: 1 << 20 },
      { ...good, filter: { ...good.filter, unicast: Array.from({ length: 65 }, () => PEER) } },
      { ...good, filter: { ...good.filter, promisc: 'yes' } },
      { ...good, linkUp: 1 },
    ];
    for (const state of bad) {
      expect(() => s.device.restoreState(state), JSON.stringify(state)).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }));
    }
    expect(s.device.saveState()).toEqual(good);
    fc.assert(
      fc.property(fc.anything(), (state) => {
        try {
          s.device.restoreState(state);
        } catch (error) {
          expect(BackendError.isInstance(error)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('virtio-net as a vhost-user-net data plane (controlQueue: false)', () => {
  function activateWith(device: NetDevice, features: Features, enabled: boolean[]) {
    const h = harness(device, 8 << 20);
    device.activate({
      memory: h.memory,
      features,
      queues: h.queues.map((q, i) => (enabled[i] === true ? q : null)),
      interrupt: { signalQueue: (i) => h.queueInterrupts.push(i), signalConfig: () => h.configInterrupts.count++ },
      markNeedsReset: (reason) => h.needsReset.push(reason ?? ''),
    });
    return h;
  }

  it('uses the pairs whose rings the front-end enabled; QEMU keeps VQ_PAIRS_SET', () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 2 });
    const device = new NetDevice({ backend, queuePairs: 2, controlQueue: false });
    const f = device.deviceFeatures;
    activateWith(device, f, [true, true, false, false]);
    expect(backend.ports.map((p) => p.receiver !== undefined)).toEqual([true, false]);
    device.reset();
    const h = activateWith(device, f, [true, true, true, true]);
    expect(backend.ports.map((p) => p.receiver !== undefined)).toEqual([true, true]);
    const buffer = h.builder.chain([], h.builder.reserve([2048]));
    h.queues[2]!.offer(buffer);
    // The guest's MAC is QEMU's (its config space), not ours: no filtering by destination here.
    backend.ports[1]!.deliver(frameTo('02:aa:bb:cc:dd:ee', 64));
    expect(h.queues[2]!.used).toEqual([{ head: buffer.head, length: 76 }]);
  });

  it('5.1.6.1: the header is 12 bytes with VERSION_1 or MRG_RXBUF, 10 bytes for a legacy front-end without either', () => {
    const backend = new RecordingNetBackend();
    const device = new NetDevice({ backend, controlQueue: false });
    const legacy = device.deviceFeatures & ~featureBits(VIRTIO_F_VERSION_1, VIRTIO_NET_F_MRG_RXBUF);
    const h = activateWith(device, legacy, [true, true]);
    const frame = frameTo(PEER, 60);
    h.queues[1]!.offer(h.builder.chain(h.builder.place(concat(hdr({}, 10), frame)), []));
    device.queueNotify(1);
    expect(equalBytes(backend.ports[0]!.sent[0]!.bytes, frame)).toBe(true);
    const writable = h.builder.reserve([2048]);
    const rx = h.builder.chain([], writable);
    h.queues[0]!.offer(rx);
    const reply = frameTo(OWN, 60);
    backend.ports[0]!.deliver(reply);
    expect(h.queues[0]!.used).toEqual([{ head: rx.head, length: 70 }]);
    expect(equalBytes(h.builder.bytesOf(writable).subarray(10, 70), reply)).toBe(true);
    // MRG_RXBUF alone (a legacy front-end with mergeable buffers): 12 bytes.
    device.reset();
    const h2 = activateWith(device, legacy | featureBit(VIRTIO_NET_F_MRG_RXBUF), [true, true]);
    const w2 = h2.builder.reserve([2048]);
    h2.queues[0]!.offer(h2.builder.chain([], w2));
    backend.ports[0]!.deliver(reply);
    expect(h2.queues[0]!.used[0]!.length).toBe(72);
    expect(decodeNetHdr(h2.builder.bytesOf(w2)).numBuffers).toBe(1);
  });
});

describe('virtio-net hostile guests', () => {
  it('H17: a transmit ring kept full does not hold the thread: the drain yields and resumes from a timer', async () => {
    const s = setup({ queueSize: 16 });
    const q = s.h.queues[1]!;
    for (let i = 0; i < 200; i++) q.offer(s.h.builder.chain(s.h.builder.place(concat(hdr(), frameTo(PEER, 60, i))), [], i));
    s.device.queueNotify(1);
    // yieldAfter = 4 x queue size = 64 chains per turn.
    expect(s.port().sent.length).toBe(64);
    await settle();
    expect(s.port().sent.length).toBe(200);
    expect(q.used).toHaveLength(200);
  });

  it('H13: a flood of malformed receive buffers is returned and a valid buffer still gets the frame', () => {
    const s = setup();
    const q = s.h.queues[0]!;
    for (let i = 0; i < 500; i++) q.offer(s.h.builder.chain(s.h.builder.place(new Uint8Array(4)), s.h.builder.reserve([16]), i));
    const good = s.h.builder.chain([], s.h.builder.reserve([2048]), 1000);
    q.offer(good);
    expect(s.port().deliver(frameTo(OWN, 100))).toBe(true);
    expect(q.used).toHaveLength(501);
    expect(q.used.at(-1)).toEqual({ head: 1000, length: 112 });
    expect(s.device.metrics.faults.RX_BAD_BUFFER).toBe(500);
  });
});
