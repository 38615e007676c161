import fc from 'fast-check';
import { hasFeature } from '@virtio-ts/device';
import type { Segment } from '@virtio-ts/ring';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import { harness, settle, without } from '../testing/harness.js';
import { MemoryConsoleBackend, type ConsoleBackend } from './console-backend.js';
import { ConsoleDevice, type ConsoleDeviceOptions } from './console-device.js';
import {
  CONSOLE_CONFIG,
  VIRTIO_CONSOLE_CONSOLE_PORT,
  VIRTIO_CONSOLE_DEVICE_ADD,
  VIRTIO_CONSOLE_DEVICE_READY,
  VIRTIO_CONSOLE_DEVICE_REMOVE,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN,
  VIRTIO_CONSOLE_PORT_READY,
  VIRTIO_CONSOLE_RESIZE,
  receiveQueueOf,
  transmitQueueOf,
} from './constants.js';
import { decodeControlMessage, encodeControlMessage, type ControlMessage } from './control-message.js';

const text = (s: string) => new TextEncoder().encode(s);

function setup(options: Partial<ConsoleDeviceOptions> & { backends?: ConsoleBackend[] } = {}, negotiate?: (d: ConsoleDevice) => bigint) {
  const backends = options.backends ?? [new MemoryConsoleBackend()];
  const device = new ConsoleDevice({ ports: backends.map((backend) => ({ backend })), ...options });
  const h = harness(device, 1 << 20);
  h.activate(negotiate ? negotiate(device) : device.deviceFeatures);
  const b = h.builder;
  /** The driver sends bytes on a port's transmitq. */
  const transmit = (port: number, bytes: Uint8Array, split?: number[]) => {
    h.queues[transmitQueueOf(port)]!.offer(b.chain(b.place(bytes, split), []));
    device.queueNotify(transmitQueueOf(port));
  };
  /** The driver posts a receive buffer on a port's receiveq. */
  const post = (port: number, split: number[]): Segment[] => {
    const segments = b.reserve(split);
    h.queues[receiveQueueOf(port)]!.offer(b.chain([], segments));
    device.queueNotify(receiveQueueOf(port));
    return segments;
  };
  return { device, h, b, backends: backends as MemoryConsoleBackend[], transmit, post };
}

describe('virtio-console single port (VIRTIO 1.3 §5.3)', () => {
  it('5.3.6: output placed in the transmitq reaches the backend byte-exact, even in 1-byte descriptors (H14)', () => {
    const { backends, transmit, h } = setup();
    transmit(0, text('hello, '));
    transmit(0, text('world'), [1, 1, 1, 1, 1]);
    expect(backends[0]!.text()).toBe('hello, world');
    expect(h.queues[1]!.used).toEqual([
      { head: 0, length: 0 },
      { head: 1, length: 0 },
    ]);
  });

  it('5.3.6: host input waits for a receive buffer and is split across buffers; used length is what was written', () => {
    const { backends, post, h, b, device } = setup();
    backends[0]!.input('abcdefghij');
    expect(device.metrics.receivedBytes).toBe(0);
    const first = post(0, [4]);
    const second = post(0, [1, 1, 1, 1, 1, 1, 1, 1]);
    expect(h.queues[0]!.used).toEqual([
      { head: 0, length: 4 },
      { head: 1, length: 6 },
    ]);
    expect(new TextDecoder().decode(b.bytesOf(first))).toBe('abcd');
    expect(new TextDecoder().decode(b.bytesOf(second).subarray(0, 6))).toBe('efghij');
    // A posted buffer with no input stays with the device until input arrives.
    post(0, [16]);
    expect(h.queues[0]!.used.length).toBe(2);
    backends[0]!.input('k');
    expect(h.queues[0]!.used.at(-1)).toEqual({ head: 2, length: 1 });
    expect(b.guardsIntact()).toBe(true);
  });

  it('5.3.6.1: "MUST NOT put a device-readable buffer in a receiveq ... a device-writable buffer in a transmitq" — returned with length 0 and counted', () => {
    const { backends, h, b, device } = setup();
    backends[0]!.input('x');
    h.queues[0]!.offer(b.chain(b.place(text('zz')), b.reserve([4])));
    device.queueNotify(0);
    h.queues[1]!.offer(b.chain(b.place(text('out')), b.reserve([4])));
    device.queueNotify(1);
    expect(h.queues[0]!.used).toEqual([{ head: 0, length: 0 }]);
    expect(h.queues[1]!.used).toEqual([{ head: 1, length: 0 }]);
    expect(backends[0]!.text()).toBe('');
    expect(device.metrics.faults).toMatchObject({ READABLE_IN_RECEIVEQ: 1, WRITABLE_IN_TRANSMITQ: 1 });
  });

  it('host input beyond maxBufferedInput is dropped and counted, never an unbounded buffer', () => {
    const { backends, device } = setup({ maxBufferedInput: 8 });
    backends[0]!.input('0123456789abc');
    expect(device.ports[0]!.bufferedInput).toBe(8);
    expect(device.metrics.inputDropped).toBe(5);
  });

  it('5.3.5.1: "The device MUST allow a write to emerg_wr, even on an unconfigured device" and transmits its lower byte', () => {
    const backend = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend }] });
    expect(hasFeature(device.deviceFeatures, VIRTIO_CONSOLE_F_EMERG_WRITE)).toBe(true);
    device.writeConfig(CONSOLE_CONFIG.emergWr, Uint8Array.of(0x41, 0x42, 0, 0));
    expect(backend.text()).toBe('A');
    expect(device.metrics.emergencyWrites).toBe(1);
  });

  it('5.3.4: cols, rows and max_nr_ports at their offsets; resize sends a config change with VIRTIO_CONSOLE_F_SIZE', () => {
    const { device, h } = setup({ size: { cols: 80, rows: 25 } });
    const bytes = new Uint8Array(CONSOLE_CONFIG.size);
    device.readConfig(0, bytes);
    const view = new DataView(bytes.buffer);
    expect([view.getUint16(0, true), view.getUint16(2, true), view.getUint32(4, true), view.getUint32(8, true)]).toEqual([80, 25, 1, 0]);
    device.resize(132, 43);
    device.readConfig(0, bytes);
    expect([view.getUint16(0, true), view.getUint16(2, true)]).toEqual([132, 43]);
    expect(h.configInterrupts.count).toBe(1);
    const noSize = setup({ size: { cols: 80, rows: 25 } }, (d) => without(d, VIRTIO_CONSOLE_F_SIZE));
    noSize.device.resize(100, 30);
    expect(noSize.h.configInterrupts.count).toBe(0);
  });

  it('back-pressure: a transmit buffer is returned only when the backend write settles', async () => {
    let release!: () => void;
    const written: string[] = [];
    const slow: ConsoleBackend = {
      write: (bytes) => {
        written.push(new TextDecoder().decode(bytes));
        return new Promise<void>((resolve) => (release = resolve));
      },
      onData: () => () => undefined,
    };
    const { transmit, h } = setup({ backends: [slow] });
    transmit(0, text('slow'));
    await settle();
    expect(written).toEqual(['slow']);
    expect(h.queues[1]!.used).toEqual([]);
    release();
    await settle();
    expect(h.queues[1]!.used).toEqual([{ head: 0, length: 0 }]);
  });
});

describe('virtio-console multiport (§5.3.6.2)', () => {
  function multiport(options: Partial<ConsoleDeviceOptions> = {}) {
    const backends = [new MemoryConsoleBackend(), new MemoryConsoleBackend()];
    const device = new ConsoleDevice({ ports: [{ backend: backends[0]! }, { backend: backends[1]!, name: 'org.example.port' }], size: { cols: 80, rows: 24 }, ...options });
    const h = harness(device, 1 << 20);
    h.activate(device.deviceFeatures);
    const b = h.builder;
    const controlBuffers = new Map<number, Segment[]>();
    /** The driver posts `n` control receive buffers of 64 bytes. */
    const postControl = (n: number) => {
      for (let i = 0; i < n; i++) {
        const segments = b.reserve([64]);
        const chain = b.chain([], segments);
        controlBuffers.set(chain.head, segments);
        h.queues[2]!.offer(chain);
      }
      device.queueNotify(2);
    };
    /** Control messages the device has sent so far. */
    const sent = (): ControlMessage[] => h.queues[2]!.used.map((u) => decodeControlMessage(b.bytesOf(controlBuffers.get(u.head)!).subarray(0, u.length))!);
    /** The driver sends a control message. */
    const send = (message: ControlMessage, split?: number[]) => {
      h.queues[3]!.offer(b.chain(b.place(encodeControlMessage(message), split), []));
      device.queueNotify(3);
    };
    return { device, h, b, backends, postControl, sent, send };
  }

  it('5.3.6.2: DEVICE_READY → DEVICE_ADD per port; PORT_READY → CONSOLE_PORT, PORT_NAME, PORT_OPEN (and RESIZE for the console)', () => {
    const { device, postControl, sent, send } = multiport();
    expect(hasFeature(device.deviceFeatures, VIRTIO_CONSOLE_F_MULTIPORT)).toBe(true);
    expect(device.queueMaxSizes.length).toBe(6);
    postControl(16);
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    expect(sent()).toEqual([
      { id: 0, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 },
      { id: 1, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 },
    ]);
    send({ id: 0, event: VIRTIO_CONSOLE_PORT_READY, value: 1 });
    send({ id: 1, event: VIRTIO_CONSOLE_PORT_READY, value: 1 }, [3, 5]);
    const resize = new Uint8Array([80, 0, 24, 0]);
    expect(sent().slice(2)).toEqual([
      { id: 0, event: VIRTIO_CONSOLE_CONSOLE_PORT, value: 1 },
      { id: 0, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 },
      { id: 0, event: VIRTIO_CONSOLE_RESIZE, value: 0, payload: resize },
      { id: 1, event: VIRTIO_CONSOLE_PORT_NAME, value: 1, payload: text('org.example.port') },
      { id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 },
    ]);
  });

  it('5.3.6.2: control messages wait for control receive buffers', () => {
    const { postControl, sent, send } = multiport();
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    expect(sent()).toEqual([]);
    postControl(1);
    expect(sent().length).toBe(1);
    postControl(4);
    expect(sent().length).toBe(2);
  });

  it('echo on port 1: input waits until the guest opens the port (PORT_OPEN), output reaches its backend', () => {
    const { device, h, b, backends, postControl, send } = multiport();
    postControl(16);
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    send({ id: 1, event: VIRTIO_CONSOLE_PORT_READY, value: 1 });
    const rx = b.reserve([32]);
    h.queues[receiveQueueOf(1)]!.offer(b.chain([], rx));
    device.queueNotify(receiveQueueOf(1));
    backends[1]!.input('ping');
    expect(h.queues[receiveQueueOf(1)]!.used).toEqual([]);
    send({ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 });
    expect(h.queues[receiveQueueOf(1)]!.used).toEqual([{ head: expect.any(Number) as number, length: 4 }]);
    const got = b.bytesOf(rx).subarray(0, 4);
    // The guest echoes it back on port 1's transmitq.
    h.queues[transmitQueueOf(1)]!.offer(b.chain(b.place(got), []));
    device.queueNotify(transmitQueueOf(1));
    expect(backends[1]!.text()).toBe('ping');
    expect(backends[0]!.text()).toBe('');
  });

  it('hostile control messages: short, unknown port, device-only events — counted, ignored, never thrown', () => {
    const { device, postControl, sent, send, h, b } = multiport();
    postControl(8);
    h.queues[3]!.offer(b.chain(b.place(new Uint8Array(5)), []));
    device.queueNotify(3);
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    send({ id: 99, event: VIRTIO_CONSOLE_PORT_READY, value: 1 });
    send({ id: 0xffff_ffff, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 });
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 });
    send({ id: 0, event: 0xffff, value: 0 });
    expect(device.metrics.faults).toMatchObject({ SHORT_CONTROL_MESSAGE: 1, UNKNOWN_PORT: 2, UNEXPECTED_EVENT: 2 });
    expect(sent().length).toBe(2);
    expect(h.needsReset).toEqual([]);
  });

  it('resize sends RESIZE (cols, rows) to console ports that are ready', () => {
    const { device, postControl, sent, send } = multiport();
    postControl(16);
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    send({ id: 0, event: VIRTIO_CONSOLE_PORT_READY, value: 1 });
    const before = sent().length;
    device.resize(200, 50);
    expect(sent().slice(before)).toEqual([{ id: 0, event: VIRTIO_CONSOLE_RESIZE, value: 0, payload: Uint8Array.of(200, 0, 50, 0) }]);
  });

  it('setHostOpen sends PORT_OPEN with the host state; an unknown port is NO_SUCH_PORT', () => {
    const { device, postControl, sent, send } = multiport();
    postControl(16);
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    send({ id: 1, event: VIRTIO_CONSOLE_PORT_READY, value: 1 });
    device.setHostOpen(1, false);
    expect(sent().at(-1)).toEqual({ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 0 });
    expect(() => device.setHostOpen(5, true)).toThrow(BackendError);
  });

  it('5.3.6: hot-plug — addPort announces DEVICE_ADD with the lowest free id, removePort sends DEVICE_REMOVE', () => {
    const { device, postControl, sent, send, h, b } = multiport({ maxNrPorts: 4 });
    postControl(16);
    send({ id: 0, event: VIRTIO_CONSOLE_DEVICE_READY, value: 1 });
    const extra = new MemoryConsoleBackend();
    const id = device.addPort({ backend: extra, name: 'hot' });
    expect(id).toBe(2);
    expect(sent().at(-1)).toEqual({ id: 2, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 });
    send({ id: 2, event: VIRTIO_CONSOLE_PORT_READY, value: 1 });
    expect(sent().slice(-2)).toEqual([
      { id: 2, event: VIRTIO_CONSOLE_PORT_NAME, value: 1, payload: text('hot') },
      { id: 2, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 },
    ]);
    // The hot-plugged port's transmitq works.
    h.queues[transmitQueueOf(2)]!.offer(b.chain(b.place(text('hi')), []));
    device.queueNotify(transmitQueueOf(2));
    expect(extra.text()).toBe('hi');
    device.removePort(1);
    expect(sent().at(-1)).toEqual({ id: 1, event: VIRTIO_CONSOLE_DEVICE_REMOVE, value: 0 });
    expect(device.ports[1]).toBeUndefined();
    expect(device.addPort({ backend: new MemoryConsoleBackend() })).toBe(1);
    expect(device.addPort({ backend: new MemoryConsoleBackend() })).toBe(3);
    expect(() => device.addPort({ backend: new MemoryConsoleBackend() })).toThrow(/max_nr_ports/);
    expect(() => device.removePort(7)).toThrow(BackendError);
  });

  it('without MULTIPORT negotiated only port 0 works', () => {
    const backends = [new MemoryConsoleBackend(), new MemoryConsoleBackend()];
    const device = new ConsoleDevice({ ports: [{ backend: backends[0]! }, { backend: backends[1]! }] });
    const h = harness(device, 1 << 20);
    h.activate(without(device, VIRTIO_CONSOLE_F_MULTIPORT));
    h.queues[1]!.offer(h.builder.chain(h.builder.place(text('p0')), []));
    device.queueNotify(1);
    h.queues[5]!.offer(h.builder.chain(h.builder.place(text('p1')), []));
    device.queueNotify(5);
    expect(backends[0]!.text()).toBe('p0');
    expect(backends[1]!.text()).toBe('');
  });
});

describe('virtio-console codec and persist', () => {
  it('property: control messages round-trip', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 0xffff }), fc.nat({ max: 0xffff }), fc.uint8Array({ maxLength: 40 }), (id, event, value, payload) => {
        const message = payload.length > 0 ? { id, event, value, payload } : { id, event, value };
        expect(decodeControlMessage(encodeControlMessage(message))).toEqual(message);
      }),
      { numRuns: 300 },
    );
  });

  it('persist: pending input, port state and size survive save → JSON → restore', () => {
    const a = setup({ size: { cols: 90, rows: 30 } });
    a.backends[0]!.input('pending');
    const state = JSON.parse(JSON.stringify(a.device.saveState())) as unknown;
    const backend = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend }], size: { cols: 1, rows: 1 } });
    device.restoreState(state);
    expect(device.ports[0]!.bufferedInput).toBe(7);
    const bytes = new Uint8Array(4);
    device.readConfig(0, bytes);
    expect([...bytes]).toEqual([90, 0, 30, 0]);
  });

  it('H16: restore refuses unknown ports, oversize input and bad types', () => {
    const device = new ConsoleDevice({ ports: [{ backend: new MemoryConsoleBackend() }], maxBufferedInput: 4 });
    for (const bad of [
      null,
      { version: 2 },
      { version: 1, cols: 70000 },
      { version: 1, ports: [{ id: 3 }] },
      { version: 1, ports: [{ id: 0 }, { id: 0 }] },
      { version: 1, ports: [{ id: 0, pendingInput: [1, 2, 3, 4, 5] }] },
      { version: 1, ports: [{ id: 0, pendingInput: [256] }] },
      { version: 1, deviceReady: 'yes' },
    ]) {
      expect(() => device.restoreState(bad)).toThrow(BackendError);
    }
  });

  it('H16 property: restore of arbitrary JSON either succeeds or throws BackendError INVALID_STATE, and the device still works', () => {
    const backend = new MemoryConsoleBackend();
    const device = new ConsoleDevice({ ports: [{ backend }, { backend: new MemoryConsoleBackend() }], maxBufferedInput: 16 });
    const port = fc.record({ id: fc.oneof(fc.integer({ min: -2, max: 4 }), fc.jsonValue()), ready: fc.jsonValue(), pendingInput: fc.oneof(fc.array(fc.integer({ min: -1, max: 256 }), { maxLength: 20 }), fc.jsonValue()) }, { requiredKeys: [] });
    const state = fc.oneof(fc.jsonValue(), fc.record({ version: fc.constant(1), cols: fc.jsonValue(), rows: fc.integer(), deviceReady: fc.jsonValue(), ports: fc.oneof(fc.array(port, { maxLength: 3 }), fc.jsonValue()) }, { requiredKeys: ['version'] }));
    fc.assert(
      fc.property(state, (s) => {
        try {
          device.restoreState(s);
        } catch (error) {
          expect(BackendError.isInstance(error) && error.code === 'INVALID_STATE').toBe(true);
        }
        for (const p of device.ports) expect(p?.bufferedInput ?? 0).toBeLessThanOrEqual(16);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses bad options', () => {
    const backend = new MemoryConsoleBackend();
    expect(() => new ConsoleDevice({ ports: [] })).toThrow(/INVALID_OPTION/);
    expect(() => new ConsoleDevice({ ports: [{ backend }, { backend }], multiport: false })).toThrow(/multiport/);
    expect(() => new ConsoleDevice({ ports: [{ backend }], maxNrPorts: 4096 })).toThrow(/maxNrPorts/);
  });
});
