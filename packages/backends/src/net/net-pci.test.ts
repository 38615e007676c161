// End to end through virtio-pci: our pci transport's driver side negotiates with the NetDevice
// (validateFeatures at FEATURES_OK), reads its config space, sets up rx/tx/ctrl queues with MSI-X,
// and moves frames and control commands through guest memory.
import {
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_OK,
  VIRTIO_NET_S_LINK_UP,
  decodeNetHdr,
  featureBits,
  negotiateFeatures,
  setDriverOk,
} from '@virtio-ts/device';
import { createPciHarness } from '@virtio-ts/pci/testing';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../testing/bytes.js';
import { NetDevice } from './net-device.js';
import { RecordingNetBackend } from './recording-net-backend.js';
import { PEER, concat, ctrlCommand, frameTo, hdr } from './net-test-frames.test-util.js';

describe('virtio-net end to end through virtio-pci', () => {
  it('negotiation, config space, TX, RX with MRG_RXBUF, VQ_PAIRS_SET and a link change, with MSI-X interrupts', () => {
    const backend = new RecordingNetBackend({ maxQueuePairs: 2, mtu: 9000 });
    const device = new NetDevice({ backend, queuePairs: 2, queueSize: 64, mac: '02:00:00:00:00:01', mtu: 1500 });
    const { transport, allocator, memory } = createPciHarness(device);
    // A dependency violation is refused at FEATURES_OK (§5.1.3.1: MQ requires CTRL_VQ).
    expect(() => negotiateFeatures(transport, featureBits(VIRTIO_NET_F_MQ))).toThrow(expect.objectContaining({ code: 'NEGOTIATION_FAILED' }));
    const wanted = featureBits(VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MQ, VIRTIO_NET_F_GUEST_TSO4);
    const accepted = negotiateFeatures(transport, wanted);
    expect(accepted & featureBits(VIRTIO_NET_F_GUEST_TSO4)).toBe(0n); // not offered: the back-end has no offloads
    const config = transport.readConfig(0, 12);
    const v = new DataView(config.buffer, config.byteOffset, 12);
    expect([...config.subarray(0, 6)]).toEqual([2, 0, 0, 0, 0, 1]);
    expect(v.getUint16(6, true)).toBe(VIRTIO_NET_S_LINK_UP);
    expect(v.getUint16(8, true)).toBe(2);
    expect(v.getUint16(10, true)).toBe(1500);
    const irq = new Map<string, number>();
    const count = (name: string) => () => irq.set(name, (irq.get(name) ?? 0) + 1);
    const queues = ['rx0', 'tx0', 'rx1', 'tx1', 'ctrl'].map((name, i) => transport.setupQueue<number>(i, { onInterrupt: count(name) }));
    let configChanges = 0;
    transport.onConfigChange(() => configChanges++);
    setDriverOk(transport);
    const [rx0, tx0, rx1, , ctrl] = queues as [typeof queues[0], typeof queues[0], typeof queues[0], typeof queues[0], typeof queues[0]];
    const kick = (index: number) => {
      if (queues[index]!.kickPrepare()) transport.notify(index);
    };
    const place = (bytes: Uint8Array) => {
      const address = allocator.allocate(bytes.length, 16);
      memory.write(address, bytes);
      return { address, length: bytes.length };
    };

    // TX on pair 0.
    const frame = frameTo(PEER, 200, 5);
    tx0.add([place(concat(hdr(), frame))], [], 1);
    kick(1);
    expect(backend.ports[0]!.sent).toHaveLength(1);
    expect(equalBytes(backend.ports[0]!.sent[0]!.bytes, frame)).toBe(true);
    expect(tx0.getUsed()).toEqual({ token: 1, length: 0 });

    // RX with mergeable buffers of 128 bytes: a 300-byte frame takes three.
    const buffers = Array.from({ length: 8 }, (_, i) => {
      const address = allocator.allocate(128, 16);
      rx0.add([], [{ address, length: 128 }], i);
      return address;
    });
    kick(0);
    const reply = frameTo('02:00:00:00:00:01', 300, 6);
    expect(backend.ports[0]!.deliver(reply)).toBe(true);
    expect(irq.get('rx0')).toBe(1);
    const used = [rx0.getUsed(), rx0.getUsed(), rx0.getUsed(), rx0.getUsed()];
    expect(used).toEqual([{ token: 0, length: 128 }, { token: 1, length: 128 }, { token: 2, length: 56 }, null]);
    const got = concat(...buffers.slice(0, 3).map((a, i) => memory.slice(a, used[i]!.length)));
    expect(decodeNetHdr(got).numBuffers).toBe(3);
    expect(equalBytes(got.subarray(12), reply)).toBe(true);

    // VQ_PAIRS_SET 2 over the control queue; then a frame arriving on port 1 lands in rx1.
    const ack = allocator.allocate(1, 1);
    ctrl.add([place(ctrlCommand(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, Uint8Array.of(2, 0)))], [{ address: ack, length: 1 }], 99);
    kick(4);
    expect(ctrl.getUsed()).toEqual({ token: 99, length: 1 });
    expect(memory.readU8(ack)).toBe(VIRTIO_NET_OK);
    const rx1Buffer = allocator.allocate(1600, 16);
    rx1.add([], [{ address: rx1Buffer, length: 1600 }], 7);
    kick(2);
    backend.ports[1]!.deliver(frameTo('02:00:00:00:00:01', 64));
    expect(rx1.getUsed()).toEqual({ token: 7, length: 76 });

    // Link down: a configuration change interrupt and LINK_UP cleared.
    device.setLinkUp(false);
    expect(configChanges).toBe(1);
    expect(transport.readConfig(6, 2)[0]! & VIRTIO_NET_S_LINK_UP).toBe(0);
    expect(device.metrics.needsReset).toBe(0);
  });
});
