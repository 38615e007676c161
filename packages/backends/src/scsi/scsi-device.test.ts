import { describe, expect, it } from 'vitest';
import { RingError } from '@virtio-ts/ring';
import { MemoryDisk } from '../testing/memory-disk.js';
import { harness, settle } from '../testing/harness.js';
import { encodeCdb, type Cdb } from './cdb.js';
import { decodeScsiConfig } from './config.js';
import {
  SAM_STAT_CHECK_CONDITION,
  SAM_STAT_GOOD,
  SCSI_CONFIG,
  VIRTIO_SCSI_EVT_RESET_REMOVED,
  VIRTIO_SCSI_EVT_RESET_RESCAN,
  VIRTIO_SCSI_S_ABORTED,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_FAILURE,
  VIRTIO_SCSI_S_FUNCTION_COMPLETE,
  VIRTIO_SCSI_S_FUNCTION_REJECTED,
  VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
  VIRTIO_SCSI_S_INCORRECT_LUN,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_S_OVERRUN,
  VIRTIO_SCSI_T_AN_QUERY,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_T_NO_EVENT,
  VIRTIO_SCSI_T_PARAM_CHANGE,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_TMF_ABORT_TASK,
  VIRTIO_SCSI_T_TMF_CLEAR_ACA,
  VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET,
  VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
  VIRTIO_SCSI_T_TMF_QUERY_TASK,
  VIRTIO_SCSI_T_TRANSPORT_RESET,
} from './constants.js';
import { encodeLunAddress } from './lun-address.js';
import { ScsiDevice, type ScsiDeviceOptions } from './scsi-device.js';
import { SENSE, decodeSense } from './sense.js';

const DISK = 1 << 20;
const RESP = 12 + 96;

function setup(options: ScsiDeviceOptions = {}, disk = new MemoryDisk({ size: DISK })) {
  const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: disk, serial: 'S0' } }], ...options });
  const h = harness(device);
  h.activate(device.deviceFeatures);
  // Consume the power-on unit attention.
  (device.unit(0, 0)?.pendingUnitAttentions as unknown[] | undefined)?.splice(0);
  return { device, h, disk };
}

type H = ReturnType<typeof setup>['h'];

function header(lunBytes: Uint8Array, tag: bigint, cdb: Uint8Array, cdbSize = 32): Uint8Array {
  const b = new Uint8Array(19 + cdbSize);
  b.set(lunBytes);
  new DataView(b.buffer).setBigUint64(8, tag, true);
  b.set(cdb.subarray(0, cdbSize), 19);
  return b;
}

/** Offers a command on request queue 2; returns accessors for its response and data-in. */
function command(h: H, device: ScsiDevice, lun: { target: number; lun: number } | Uint8Array, cdb: Cdb | Uint8Array, io: { dataIn?: number; dataOut?: Uint8Array; tag?: bigint } = {}) {
  const b = h.builder;
  const lunBytes = lun instanceof Uint8Array ? lun : encodeLunAddress(lun);
  const readable = b.place(header(lunBytes, io.tag ?? 1n, cdb instanceof Uint8Array ? cdb : encodeCdb(cdb)));
  if (io.dataOut !== undefined) readable.push(...b.place(io.dataOut));
  const response = b.reserve([RESP]);
  const dataIn = io.dataIn !== undefined ? b.reserve([io.dataIn]) : [];
  const chain = b.chain(readable, [...response, ...dataIn]);
  h.queues[2]!.offer(chain);
  device.queueNotify(2);
  return {
    chain,
    response() {
      const r = b.bytesOf(response);
      const v = new DataView(r.buffer);
      return { senseLen: v.getUint32(0, true), residual: v.getUint32(4, true), status: r[10], response: r[11], sense: decodeSense(r.subarray(12, 12 + v.getUint32(0, true))) };
    },
    data: () => b.bytesOf(dataIn),
    used: () => h.queues[2]!.used.find((u) => u.head === chain.head),
  };
}

function tmf(h: H, device: ScsiDevice, subtype: number, lun: { target: number; lun: number }, tag = 0n) {
  const b = h.builder;
  const req = new Uint8Array(24);
  const v = new DataView(req.buffer);
  v.setUint32(0, VIRTIO_SCSI_T_TMF, true);
  v.setUint32(4, subtype, true);
  req.set(encodeLunAddress(lun), 8);
  v.setBigUint64(16, tag, true);
  const resp = b.reserve([1]);
  const chain = b.chain(b.place(req), resp);
  h.queues[0]!.offer(chain);
  device.queueNotify(0);
  return { response: () => b.bytesOf(resp)[0], used: () => h.queues[0]!.used.find((u) => u.head === chain.head) };
}

function eventBuffers(h: H, device: ScsiDevice, count: number) {
  const buffers = Array.from({ length: count }, () => {
    const seg = h.builder.reserve([16]);
    h.queues[1]!.offer(h.builder.chain([], seg));
    return seg;
  });
  device.queueNotify(1);
  return buffers.map((seg) => () => {
    const bytes = h.builder.bytesOf(seg);
    const v = new DataView(bytes.buffer);
    return { event: v.getUint32(0, true), lun: [...bytes.subarray(4, 12)], reason: v.getUint32(12, true) };
  });
}

describe('virtio-scsi device (VIRTIO 1.3 §5.6)', () => {
  it('§5.6.4: configuration space: queues, limits, sense_size 96, cdb_size 32, max_channel 0', () => {
    const device = new ScsiDevice({ numQueues: 2 });
    const bytes = new Uint8Array(SCSI_CONFIG.size);
    device.readConfig(0, bytes);
    expect(decodeScsiConfig(bytes)).toEqual({ numQueues: 2, segMax: 254, maxSectors: 0xffff, cmdPerLun: 128, eventInfoSize: 16, senseSize: 96, cdbSize: 32, maxChannel: 0, maxTarget: 255, maxLun: 16383 });
    expect(device.queueMaxSizes.length).toBe(4);
  });

  it('§5.6.4: the driver may write sense_size and cdb_size; reset restores the defaults; other fields are read-only', () => {
    const device = new ScsiDevice();
    device.writeConfig(SCSI_CONFIG.cdbSize, Uint8Array.of(16, 0, 0, 0));
    device.writeConfig(SCSI_CONFIG.senseSize, Uint8Array.of(64, 0, 0, 0));
    device.writeConfig(SCSI_CONFIG.numQueues, Uint8Array.of(9, 0, 0, 0));
    device.writeConfig(SCSI_CONFIG.senseSize, Uint8Array.of(0, 0, 1, 0)); // beyond the bound
    expect(device.config()).toMatchObject({ cdbSize: 16, senseSize: 64, numQueues: 1 });
    expect(device.metrics.ignoredConfigWrites).toBe(2);
    device.reset();
    expect(device.config()).toMatchObject({ cdbSize: 32, senseSize: 96 });
  });

  it('a READ(10) through the request queue: response OK, GOOD, data, residual 0, used length = response + data', async () => {
    const { device, h, disk } = setup();
    disk.bytes.fill(0x5a, 512, 1536);
    const c = command(h, device, { target: 0, lun: 0 }, { op: 'read', size: 10, lba: 1, transferLength: 2, fua: false }, { dataIn: 1024 });
    await device.drain();
    expect(c.response()).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SAM_STAT_GOOD, residual: 0, senseLen: 0 });
    expect(c.data().every((x) => x === 0x5a)).toBe(true);
    expect(c.used()!.length).toBe(RESP + 1024);
    expect(h.builder.guardsIntact()).toBe(true);
  });

  it('CHECK CONDITION carries fixed-format sense (sense_len 18) and the residual', async () => {
    const { device, h } = setup();
    const c = command(h, device, { target: 0, lun: 0 }, { op: 'read', size: 16, lba: 4096, transferLength: 1, fua: false }, { dataIn: 512 });
    await device.drain();
    expect(c.response()).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SAM_STAT_CHECK_CONDITION, senseLen: 18, residual: 512, sense: SENSE.LBA_OUT_OF_RANGE });
  });

  it('H9: INQUIRY with allocation length 0xFFFF into a 36-byte buffer returns 36 bytes, residual 0; a 96-byte buffer leaves residual 60', async () => {
    const { device, h } = setup();
    const a = command(h, device, { target: 0, lun: 0 }, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 0xffff }, { dataIn: 36 });
    const b = command(h, device, { target: 0, lun: 0 }, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 0xffff }, { dataIn: 96 });
    await device.drain();
    expect(a.response()).toMatchObject({ status: SAM_STAT_GOOD, residual: 0 });
    expect(b.response()).toMatchObject({ status: SAM_STAT_GOOD, residual: 60 });
    expect(h.builder.guardsIntact()).toBe(true);
  });

  it('§5.6.6.1: a READ larger than data-in is VIRTIO_SCSI_S_OVERRUN', async () => {
    const { device, h } = setup();
    const c = command(h, device, { target: 0, lun: 0 }, { op: 'read', size: 10, lba: 0, transferLength: 4, fua: false }, { dataIn: 1024 });
    await device.drain();
    expect(c.response()).toMatchObject({ response: VIRTIO_SCSI_S_OVERRUN, residual: 1024 });
    expect(h.builder.guardsIntact()).toBe(true);
  });

  it('§5.6.6.1: lun[0] must be 1; a missing target or a bad address method is VIRTIO_SCSI_S_BAD_TARGET', async () => {
    const { device, h } = setup();
    const tur: Cdb = { op: 'test-unit-ready' };
    const bad = [Uint8Array.of(0, 0, 0x40, 0, 0, 0, 0, 0), encodeLunAddress({ target: 3, lun: 0 }), Uint8Array.of(1, 0, 0x80, 0, 0, 0, 0, 0), Uint8Array.of(1, 0, 0x40, 0, 1, 0, 0, 0)];
    const cs = bad.map((l) => command(h, device, l, tur));
    await device.drain();
    for (const c of cs) expect(c.response().response).toBe(VIRTIO_SCSI_S_BAD_TARGET);
    expect(device.metrics.faults.BAD_TARGET).toBe(4);
  });

  it('an existing target without the LUN: INQUIRY peripheral qualifier 3, REPORT LUNS works, TUR is LOGICAL UNIT NOT SUPPORTED', async () => {
    const { device, h } = setup();
    const inq = command(h, device, { target: 0, lun: 5 }, { op: 'inquiry', evpd: false, pageCode: 0, allocationLength: 36 }, { dataIn: 36 });
    const rl = command(h, device, { target: 0, lun: 5 }, { op: 'report-luns', selectReport: 0, allocationLength: 64 }, { dataIn: 64 });
    const tur = command(h, device, { target: 0, lun: 5 }, { op: 'test-unit-ready' });
    await device.drain();
    expect(inq.data()[0]).toBe(0x7f);
    expect([...rl.data().subarray(0, 16)]).toEqual([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(tur.response().sense).toEqual(SENSE.LOGICAL_UNIT_NOT_SUPPORTED);
  });

  it('faults: no room for the response (used length 0), a short header (FAILURE), data both ways without INOUT (FAILURE)', async () => {
    const { device, h } = setup();
    const b = h.builder;
    const short = b.chain(b.place(header(encodeLunAddress({ target: 0, lun: 0 }), 1n, new Uint8Array(6))), b.reserve([50]));
    h.queues[2]!.offer(short);
    const noHeader = b.reserve([RESP]);
    const shortHeader = b.chain(b.place(new Uint8Array(20)), noHeader);
    h.queues[2]!.offer(shortHeader);
    device.queueNotify(2);
    const both = command(h, device, { target: 0, lun: 0 }, { op: 'write', size: 10, lba: 0, transferLength: 1, fua: false }, { dataIn: 512, dataOut: new Uint8Array(512) });
    await device.drain();
    expect(h.queues[2]!.used.find((u) => u.head === short.head)!.length).toBe(0);
    expect(b.bytesOf(noHeader)[11]).toBe(VIRTIO_SCSI_S_FAILURE);
    expect(both.response().response).toBe(VIRTIO_SCSI_S_FAILURE);
    expect(device.metrics.faults).toMatchObject({ RESPONSE_TOO_SHORT: 1, HEADER_TOO_SHORT: 1, BIDIRECTIONAL: 1 });
    expect(h.queues[2]!.pending).toEqual([]);
  });

  it('a CDB shorter than its opcode needs (cdb_size 6, READ(16)): CHECK CONDITION INVALID FIELD IN CDB', async () => {
    const { device, h } = setup();
    device.writeConfig(SCSI_CONFIG.cdbSize, Uint8Array.of(6, 0, 0, 0));
    const b = h.builder;
    const resp = b.reserve([RESP]);
    h.queues[2]!.offer(b.chain(b.place(header(encodeLunAddress({ target: 0, lun: 0 }), 1n, encodeCdb({ op: 'read', size: 16, lba: 0, transferLength: 1, fua: false }), 6)), [...resp, ...b.reserve([512])]));
    device.queueNotify(2);
    await device.drain();
    expect(decodeSense(b.bytesOf(resp).subarray(12, 30))).toEqual(SENSE.INVALID_FIELD_IN_CDB);
  });

  it('a ring error on the request queue marks the device DEVICE_NEEDS_RESET', () => {
    const { device, h } = setup();
    h.queues[2]!.offer(new RingError('DESCRIPTOR_LOOP', 'loop', {}, { fatal: true }));
    device.queueNotify(2);
    expect(h.needsReset.length).toBe(1);
    expect(device.metrics.needsReset).toBe(1);
  });

  it('H14: header, CDB, data-out, response and data-in all in 1-byte descriptors give byte-exact results', async () => {
    const { device, h, disk } = setup();
    const b = h.builder;
    const ones = (n: number) => new Array<number>(n).fill(1);
    const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 31) & 0xff);
    const hdr = header(encodeLunAddress({ target: 0, lun: 0 }), 5n, encodeCdb({ op: 'write', size: 10, lba: 3, transferLength: 2, fua: false }));
    const wresp = b.reserve(ones(RESP));
    h.queues[2]!.offer(b.chain([...b.place(hdr, ones(hdr.length)), ...b.place(data, ones(1024))], wresp));
    device.queueNotify(2);
    await device.drain();
    expect(b.bytesOf(wresp)[11]).toBe(VIRTIO_SCSI_S_OK);
    expect(disk.bytes.subarray(3 * 512, 5 * 512)).toEqual(data);
    const rhdr = header(encodeLunAddress({ target: 0, lun: 0 }), 6n, encodeCdb({ op: 'read', size: 10, lba: 3, transferLength: 2, fua: false }));
    const rresp = b.reserve(ones(RESP));
    const rdata = b.reserve(ones(1024));
    h.queues[2]!.offer(b.chain(b.place(rhdr, ones(rhdr.length)), [...rresp, ...rdata]));
    device.queueNotify(2);
    await device.drain();
    expect(b.bytesOf(rresp)[10]).toBe(SAM_STAT_GOOD);
    expect(b.bytesOf(rdata)).toEqual(data);
    expect(b.guardsIntact()).toBe(true);
  });

  it('H13: thousands of malformed requests are all returned and a valid request still completes', async () => {
    const { device, h } = setup({ queueSize: 64 });
    const b = h.builder;
    const hdr = b.place(header(encodeLunAddress({ target: 0, lun: 0 }), 1n, encodeCdb({ op: 'test-unit-ready' })));
    const tiny = b.reserve([8]);
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 64; i++) h.queues[2]!.offer(b.chain(hdr, tiny, i));
      device.queueNotify(2);
      await device.drain();
      expect(h.queues[2]!.pending).toEqual([]);
    }
    expect(device.metrics.faults.RESPONSE_TOO_SHORT).toBe(40 * 64);
    const ok = command(h, device, { target: 0, lun: 0 }, { op: 'test-unit-ready' });
    await device.drain();
    expect(ok.response()).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SAM_STAT_GOOD });
  });

  describe('task management (§5.6.6.2.1)', () => {
    it('ABORT TASK: the task completes with VIRTIO_SCSI_S_ABORTED after its I/O settles, then the TMF with FUNCTION COMPLETE', async () => {
      const disk = new MemoryDisk({ size: DISK, manual: true });
      const { device, h } = setup({}, disk);
      const c = command(h, device, { target: 0, lun: 0 }, { op: 'read', size: 10, lba: 0, transferLength: 1, fua: false }, { dataIn: 512, tag: 77n });
      await settle();
      const query = tmf(h, device, VIRTIO_SCSI_T_TMF_QUERY_TASK, { target: 0, lun: 0 }, 77n);
      expect(query.response()).toBe(VIRTIO_SCSI_S_FUNCTION_SUCCEEDED);
      const t = tmf(h, device, VIRTIO_SCSI_T_TMF_ABORT_TASK, { target: 0, lun: 0 }, 77n);
      await settle();
      expect(t.used()).toBeUndefined();
      disk.held.shift()!.release();
      await device.drain();
      expect(c.response().response).toBe(VIRTIO_SCSI_S_ABORTED);
      expect(c.used()!.length).toBe(RESP);
      expect(t.response()).toBe(VIRTIO_SCSI_S_FUNCTION_COMPLETE);
      expect(tmf(h, device, VIRTIO_SCSI_T_TMF_QUERY_TASK, { target: 0, lun: 0 }, 77n).response()).toBe(VIRTIO_SCSI_S_FUNCTION_COMPLETE);
    });

    it('LOGICAL UNIT RESET aborts the LUN tasks and sets UNIT ATTENTION POWER ON, RESET', async () => {
      const { device, h } = setup();
      const t = tmf(h, device, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { target: 0, lun: 0 });
      await device.drain();
      expect(t.response()).toBe(VIRTIO_SCSI_S_FUNCTION_COMPLETE);
      const c = command(h, device, { target: 0, lun: 0 }, { op: 'test-unit-ready' });
      await device.drain();
      expect(c.response().sense).toEqual(SENSE.POWER_ON_RESET);
    });

    it('I_T NEXUS RESET resets every LUN of the target with I_T NEXUS LOSS OCCURRED', async () => {
      const { device, h } = setup();
      device.addLun(0, 1, { driver: new MemoryDisk({ size: DISK }) });
      const t = tmf(h, device, VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, { target: 0, lun: 0 });
      await device.drain();
      expect(t.response()).toBe(VIRTIO_SCSI_S_FUNCTION_COMPLETE);
      expect(device.unit(0, 1)!.pendingUnitAttentions).toEqual([SENSE.I_T_NEXUS_LOSS]);
      expect(device.unit(0, 0)!.pendingUnitAttentions).toEqual([SENSE.I_T_NEXUS_LOSS]);
    });

    it('bad target: BAD_TARGET; missing LUN: INCORRECT_LUN; CLEAR ACA: FUNCTION_REJECTED', async () => {
      const { device, h } = setup();
      expect(tmf(h, device, VIRTIO_SCSI_T_TMF_ABORT_TASK, { target: 9, lun: 0 }).response()).toBe(VIRTIO_SCSI_S_BAD_TARGET);
      expect(tmf(h, device, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, { target: 0, lun: 4 }).response()).toBe(VIRTIO_SCSI_S_INCORRECT_LUN);
      expect(tmf(h, device, VIRTIO_SCSI_T_TMF_CLEAR_ACA, { target: 0, lun: 0 }).response()).toBe(VIRTIO_SCSI_S_FUNCTION_REJECTED);
    });

    it('§5.6.6.2.2: AN query answers event_actual 0 and OK; short control requests return length 0', () => {
      const { device, h } = setup();
      const b = h.builder;
      const req = new Uint8Array(16);
      new DataView(req.buffer).setUint32(0, VIRTIO_SCSI_T_AN_QUERY, true);
      req.set(encodeLunAddress({ target: 0, lun: 0 }), 4);
      new DataView(req.buffer).setUint32(12, 0xfe, true);
      const resp = b.reserve([5]);
      h.queues[0]!.offer(b.chain(b.place(req), resp));
      const short = b.chain(b.place(new Uint8Array(3)), b.reserve([1]));
      h.queues[0]!.offer(short);
      device.queueNotify(0);
      expect([...b.bytesOf(resp)]).toEqual([0, 0, 0, 0, VIRTIO_SCSI_S_OK]);
      expect(h.queues[0]!.used.find((u) => u.head === short.head)!.length).toBe(0);
      expect(device.metrics.faults.BAD_CONTROL_REQUEST).toBe(1);
    });
  });

  describe('events (§5.6.6.3)', () => {
    it('hotplug while I/O runs: RESCAN event, the new LUN answers, the other LUN gets REPORTED LUNS DATA HAS CHANGED; unplug sends REMOVED', async () => {
      const disk = new MemoryDisk({ size: DISK, manual: true });
      const { device, h } = setup({}, disk);
      const events = eventBuffers(h, device, 2);
      const io = command(h, device, { target: 0, lun: 0 }, { op: 'read', size: 10, lba: 0, transferLength: 1, fua: false }, { dataIn: 512 });
      await settle();
      device.addLun(0, 1, { driver: new MemoryDisk({ size: DISK }) });
      expect(events[0]!()).toEqual({ event: VIRTIO_SCSI_T_TRANSPORT_RESET, lun: [1, 0, 0x40, 1, 0, 0, 0, 0], reason: VIRTIO_SCSI_EVT_RESET_RESCAN });
      disk.held.shift()!.release();
      await device.drain();
      expect(io.response()).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SAM_STAT_GOOD });
      const rl = command(h, device, { target: 0, lun: 1 }, { op: 'report-luns', selectReport: 0, allocationLength: 64 }, { dataIn: 64 });
      await device.drain();
      expect([...rl.data().subarray(0, 4)]).toEqual([0, 0, 0, 16]);
      const tur = command(h, device, { target: 0, lun: 0 }, { op: 'test-unit-ready' });
      await device.drain();
      expect(tur.response().sense).toEqual(SENSE.REPORTED_LUNS_DATA_HAS_CHANGED);
      device.removeLun(0, 1);
      expect(events[1]!()).toMatchObject({ event: VIRTIO_SCSI_T_TRANSPORT_RESET, reason: VIRTIO_SCSI_EVT_RESET_REMOVED });
      const gone = command(h, device, { target: 0, lun: 1 }, { op: 'test-unit-ready' });
      await device.drain();
      expect(gone.response().sense).toEqual(SENSE.LOGICAL_UNIT_NOT_SUPPORTED);
      expect(device.metrics.eventsDelivered).toBe(2);
    });

    it('no event buffer: the event is dropped and the next buffer gets NO_EVENT | EVENTS_MISSED', () => {
      const { device, h } = setup();
      device.addLun(0, 1, { driver: new MemoryDisk({ size: DISK }) });
      expect(device.metrics.eventsMissed).toBe(1);
      const [missed] = eventBuffers(h, device, 1);
      expect(missed!().event).toBe((VIRTIO_SCSI_T_NO_EVENT | VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0);
      const [next] = eventBuffers(h, device, 1);
      device.removeLun(0, 1);
      expect(next!().event).toBe(VIRTIO_SCSI_T_TRANSPORT_RESET);
    });

    it('without VIRTIO_SCSI_F_HOTPLUG negotiated no hotplug event is sent, but the LUN list still changes', () => {
      const device = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: new MemoryDisk({ size: DISK }) } }], hotplug: false });
      const h = harness(device);
      h.activate(device.deviceFeatures);
      eventBuffers(h, device, 1);
      device.addLun(0, 2, { driver: new MemoryDisk({ size: DISK }) });
      expect(h.queues[1]!.used.length).toBe(0);
      expect(device.addresses()).toEqual([{ target: 0, lun: 0 }, { target: 0, lun: 2 }]);
    });

    it('capacity change: PARAM_CHANGE with ASC 0x2A ASCQ 0x09 and UNIT ATTENTION CAPACITY DATA HAS CHANGED', () => {
      const disk = new MemoryDisk({ size: DISK * 2 });
      disk.setLength(DISK);
      const { device, h } = setup({}, disk);
      const [event] = eventBuffers(h, device, 1);
      disk.setLength(DISK * 2);
      device.refreshCapacity();
      expect(event!()).toEqual({ event: VIRTIO_SCSI_T_PARAM_CHANGE, lun: [1, 0, 0x40, 0, 0, 0, 0, 0], reason: 0x092a });
      expect(device.unit(0, 0)!.pendingUnitAttentions).toEqual([SENSE.CAPACITY_DATA_HAS_CHANGED]);
    });
  });

  it('a device reset drops completions of the old generation and sets POWER ON, RESET', async () => {
    const disk = new MemoryDisk({ size: DISK, manual: true });
    const { device, h } = setup({}, disk);
    command(h, device, { target: 0, lun: 0 }, { op: 'read', size: 10, lba: 0, transferLength: 1, fua: false }, { dataIn: 512 });
    await settle();
    device.reset();
    disk.held.shift()!.release();
    await device.drain();
    expect(device.metrics.droppedAfterReset).toBe(1);
    expect(h.queues[2]!.used.length).toBe(0);
    expect(device.unit(0, 0)!.pendingUnitAttentions).toEqual([SENSE.POWER_ON_RESET]);
  });
});
