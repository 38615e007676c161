import { describe, expect, it } from 'vitest';
// The README's virtio-net example, verbatim apart from the imports' relative paths and the assertions.
import { NetDevice } from '../index.js';
import { RecordingNetBackend, harness } from '../testing/index.js';
import { frameTo, OWN, PEER } from './net-test-frames.test-util.js';

describe('README (virtio-net)', () => {
  it('example: a frame out, a frame in, the link down', () => {
    const frame = frameTo(PEER, 60);
    const reply = frameTo(OWN, 60);
    // --- README ---
    const backend = new RecordingNetBackend(); // or an L2Switch port, a TAP, a -netdev stream socket
    const device = new NetDevice({ backend, mac: '52:54:00:12:34:56' });
    const h = harness(device); // a transport does this: negotiation, queues, DRIVER_OK
    h.activate(device.deviceFeatures);
    const b = h.builder; // plays the guest driver
    // transmitq1 (queue 1): a 12-byte virtio_net_hdr (zero: no offload), then the frame
    h.queues[1]!.offer(b.chain(b.place(new Uint8Array([...new Uint8Array(12), ...frame])), []));
    device.queueNotify(1);
    const sent = backend.ports[0]!.sent[0]!.bytes; // the frame without its header
    // receiveq1 (queue 0): the guest posts a buffer, the back-end delivers a frame into it
    const buffer = b.reserve([1526]);
    h.queues[0]!.offer(b.chain([], buffer));
    backend.ports[0]!.deliver(reply); // virtio_net_hdr (num_buffers 1) + reply, one interrupt
    device.setLinkUp(false); // VIRTIO_NET_S_LINK_UP cleared, config interrupt
    const metrics = JSON.stringify(device.metrics); // {"queues":[...],"rxFrames":1,"txFrames":1,...}
    // --- end ---
    expect([...sent]).toEqual([...frame]);
    expect(h.queues[0]!.used).toEqual([{ head: 1, length: 72 }]);
    expect([...b.bytesOf(buffer).subarray(12, 72)]).toEqual([...reply]);
    expect(h.configInterrupts.count).toBe(1);
    expect(JSON.parse(metrics)).toMatchObject({ rxFrames: 1, txFrames: 1, rxBytes: 60, txBytes: 60 });
  });
});
