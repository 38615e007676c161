import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HEADER_SIZE, MessageReader, VHOST_USER_NEED_REPLY_MASK, VhostUserError, VhostUserRequest, decodeReply, decodeRequest, encodeReply,
  encodeRequest, type VhostUserMessage,
} from './index.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const fd = fc.integer({ min: 3, max: 1 << 20 });
const region = fc
  .record({
    guestAddress: fc.integer({ min: 0, max: 2 ** 52 }),
    size: fc.integer({ min: 1, max: 2 ** 40 }),
    userAddress: fc.bigInt({ min: 0n, max: 2n ** 63n }),
    mmapOffset: fc.integer({ min: 0, max: 2 ** 40 }),
  });

const arbMessage: fc.Arbitrary<VhostUserMessage> = fc.oneof(
  fc.constantFrom('GET_FEATURES', 'GET_PROTOCOL_FEATURES', 'SET_OWNER', 'RESET_OWNER', 'GET_QUEUE_NUM', 'RESET_DEVICE', 'GET_MAX_MEM_SLOTS', 'GET_STATUS' as const).map((type) => ({ type })),
  fc.record({ type: fc.constantFrom('SET_FEATURES' as const, 'SET_PROTOCOL_FEATURES' as const), value: u64 }),
  fc.record({ type: fc.constant('SET_STATUS' as const), status: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ type: fc.constant('NET_SET_MTU' as const), mtu: fc.integer({ min: 0, max: 0xffff }) }),
  fc.integer({ min: 1, max: 8 }).chain((n) =>
    fc.record({ type: fc.constant('SET_MEM_TABLE' as const), regions: fc.array(region, { minLength: n, maxLength: n }), fds: fc.array(fd, { minLength: n, maxLength: n }) }),
  ),
  fc.record({ type: fc.constant('ADD_MEM_REG' as const), region, fd }),
  fc.record({ type: fc.constant('REM_MEM_REG' as const), region }),
  fc.record({ type: fc.constantFrom('SET_VRING_NUM' as const, 'SET_VRING_BASE' as const, 'GET_VRING_BASE' as const, 'SET_VRING_ENABLE' as const, 'VRING_KICK' as const), index: u32, num: u32 }),
  fc.record({ type: fc.constant('SET_VRING_ADDR' as const), index: u32, flags: u32, descUserAddress: u64, usedUserAddress: u64, availUserAddress: u64, logGuestAddress: u64 }),
  fc.record({ type: fc.constantFrom('SET_VRING_KICK' as const, 'SET_VRING_CALL' as const, 'SET_VRING_ERR' as const), index: fc.integer({ min: 0, max: 255 }), fd: fc.option(fd, { nil: null }) }),
  fc.integer({ min: 0, max: 256 }).chain((size) =>
    fc.record({
      type: fc.constantFrom('GET_CONFIG' as const, 'SET_CONFIG' as const),
      offset: fc.integer({ min: 0, max: 256 - size }),
      size: fc.constant(size),
      flags: fc.integer({ min: 0, max: 1 }),
      payload: fc.uint8Array({ minLength: size, maxLength: size }),
    }),
  ),
  fc.record({ type: fc.constant('GET_INFLIGHT_FD' as const), mmapSize: fc.integer({ min: 0, max: 2 ** 40 }), mmapOffset: fc.integer({ min: 0, max: 2 ** 40 }), numQueues: fc.integer({ min: 0, max: 0xffff }), queueSize: fc.integer({ min: 0, max: 0xffff }) }),
  fc.record({ type: fc.constant('SET_INFLIGHT_FD' as const), mmapSize: fc.integer({ min: 0, max: 2 ** 40 }), mmapOffset: fc.integer({ min: 0, max: 2 ** 40 }), numQueues: fc.integer({ min: 0, max: 0xffff }), queueSize: fc.integer({ min: 0, max: 0xffff }), fd }),
);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (VhostUserError.isInstance(error)) return error.code;
    throw error;
  }
  return undefined;
}

/** Builds raw request bytes by hand (for malformed messages the encoder would never make). */
function raw(request: number, payload: Uint8Array, flags = 1, size = payload.length): { header: Uint8Array; payload: Uint8Array } {
  const header = new Uint8Array(HEADER_SIZE);
  const v = new DataView(header.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, size, true);
  return { header, payload };
}

describe('vhost-user message codec', () => {
  it('round-trips every request through encode → arbitrary chunking → frame → decode, fds attached to the right message', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(arbMessage, fc.boolean()), { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
        const reader = new MessageReader();
        const decoded: { message: VhostUserMessage; needReply: boolean }[] = [];
        for (const [message, needReply] of messages) {
          const { bytes, fds } = encodeRequest(message, { needReply });
          // Deliver this sendmsg in pieces; its fds arrive with the first piece.
          let offset = 0;
          let i = 0;
          while (offset < bytes.length) {
            const n = Math.min(cuts[i++ % cuts.length]!, bytes.length - offset);
            reader.push(bytes.subarray(offset, offset + n), offset === 0 ? fds : []);
            offset += n;
            for (let framed = reader.next(); framed; framed = reader.next()) {
              const d = decodeRequest(framed.header, framed.payload, framed.fds);
              decoded.push({ message: d.message, needReply: d.needReply });
            }
          }
        }
        expect(decoded).toEqual(messages.map(([message, needReply]) => ({ message, needReply })));
        expect(reader.pendingBytes).toBe(0);
        expect(reader.drainFds()).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('encodes replies with the reply flag, and the front-end side checks them', () => {
    const { bytes } = encodeReply('GET_FEATURES', { kind: 'u64', value: 0x1_4000_0000n });
    const reply = decodeReply(bytes.subarray(0, HEADER_SIZE), bytes.subarray(HEADER_SIZE), [], 'GET_FEATURES');
    expect(new DataView(reply.payload.buffer, reply.payload.byteOffset).getBigUint64(0, true)).toBe(0x1_4000_0000n);
    expect(codeOf(() => decodeReply(bytes.subarray(0, HEADER_SIZE), bytes.subarray(HEADER_SIZE), [], 'GET_STATUS'))).toBe('PROTOCOL_VIOLATION');
    const failedConfig = encodeReply('GET_CONFIG', { kind: 'config', offset: 0, flags: 0, data: new Uint8Array(0) });
    expect(failedConfig.bytes.length).toBe(HEADER_SIZE); // zero-length payload = error, per the spec
    const inflight = encodeReply('GET_INFLIGHT_FD', { kind: 'inflight', mmapSize: 4096, mmapOffset: 0, numQueues: 2, queueSize: 128, fd: 9 });
    expect(inflight.fds).toEqual([9]);
    // No buffer (packed rings): the full 24-byte payload with mmap_size 0, and no fd (QEMU checks the size).
    const none = encodeReply('GET_INFLIGHT_FD', { kind: 'inflight', mmapSize: 0, mmapOffset: 0, numQueues: 2, queueSize: 128, fd: null });
    expect(none.fds).toEqual([]);
    expect(none.bytes.length).toBe(HEADER_SIZE + 24);
  });
});

describe('hostile front-end messages get a typed error (the connection is then closed)', () => {
  const u64payload = (v: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  const table: [string, () => unknown, string][] = [
    ['unknown request id', () => { const m = raw(9999, new Uint8Array()); return decodeRequest(m.header, m.payload, []); }, 'UNKNOWN_REQUEST'],
    ['an unimplemented request (IOTLB_MSG)', () => { const m = raw(VhostUserRequest.IOTLB_MSG, new Uint8Array(32)); return decodeRequest(m.header, m.payload, []); }, 'UNKNOWN_REQUEST'],
    ['version 2', () => { const m = raw(1, new Uint8Array(), 2); return decodeRequest(m.header, m.payload, []); }, 'BAD_VERSION'],
    ['a request with the reply bit', () => { const m = raw(1, new Uint8Array(), 1 | 4); return decodeRequest(m.header, m.payload, []); }, 'BAD_VERSION'],
    ['header size disagrees with payload', () => { const m = raw(2, new Uint8Array(8), 1, 16); return decodeRequest(m.header, m.payload, []); }, 'BAD_SIZE'],
    ['SET_FEATURES with 4 bytes', () => { const m = raw(2, new Uint8Array(4)); return decodeRequest(m.header, m.payload, []); }, 'BAD_SIZE'],
    ['GET_FEATURES with a payload', () => { const m = raw(1, new Uint8Array(8)); return decodeRequest(m.header, m.payload, []); }, 'BAD_SIZE'],
    ['an fd on SET_OWNER', () => { const m = raw(3, new Uint8Array()); return decodeRequest(m.header, m.payload, [7]); }, 'BAD_FDS'],
    ['SET_VRING_KICK without its fd', () => { const m = raw(12, u64payload(0n)); return decodeRequest(m.header, m.payload, []); }, 'BAD_FDS'],
    ['SET_VRING_KICK with the no-fd bit and an fd', () => { const m = raw(12, u64payload(0x100n)); return decodeRequest(m.header, m.payload, [7]); }, 'BAD_FDS'],
    ['SET_VRING_CALL with reserved bits', () => { const m = raw(13, u64payload(0x1_0000n)); return decodeRequest(m.header, m.payload, [7]); }, 'BAD_PAYLOAD'],
    ['SET_MEM_TABLE with 9 regions', () => { const p = new Uint8Array(8 + 9 * 32); p[0] = 9; const m = raw(5, p); return decodeRequest(m.header, m.payload, [1, 2, 3, 4, 5, 6, 7, 8, 9].map((x) => x + 10)); }, 'BAD_FDS'],
    ['SET_MEM_TABLE with 0 regions', () => { const m = raw(5, new Uint8Array(8)); return decodeRequest(m.header, m.payload, []); }, 'BAD_PAYLOAD'],
    ['SET_MEM_TABLE with fewer fds than regions', () => {
      const { bytes } = encodeRequest({ type: 'SET_MEM_TABLE', regions: [{ guestAddress: 0, size: 4096, userAddress: 0n, mmapOffset: 0 }, { guestAddress: 8192, size: 4096, userAddress: 8192n, mmapOffset: 0 }], fds: [1, 2] });
      return decodeRequest(bytes.subarray(0, 12), bytes.subarray(12), [1]);
    }, 'BAD_FDS'],
    ['a region of size 0', () => {
      const { bytes } = encodeRequest({ type: 'ADD_MEM_REG', region: { guestAddress: 0, size: 1, userAddress: 0n, mmapOffset: 0 }, fd: 5 });
      new DataView(bytes.buffer).setBigUint64(12 + 16, 0n, true);
      return decodeRequest(bytes.subarray(0, 12), bytes.subarray(12), [5]);
    }, 'BAD_PAYLOAD'],
    ['a region ending past 2^53', () => {
      const { bytes } = encodeRequest({ type: 'ADD_MEM_REG', region: { guestAddress: 2 ** 52, size: 1, userAddress: 0n, mmapOffset: 0 }, fd: 5 });
      new DataView(bytes.buffer).setBigUint64(12 + 16, 2n ** 53n, true);
      return decodeRequest(bytes.subarray(0, 12), bytes.subarray(12), [5]);
    }, 'BAD_PAYLOAD'],
    ['a guest address of 2^64-8', () => {
      const { bytes } = encodeRequest({ type: 'ADD_MEM_REG', region: { guestAddress: 0, size: 8, userAddress: 0n, mmapOffset: 0 }, fd: 5 });
      new DataView(bytes.buffer).setBigUint64(12 + 8, 2n ** 64n - 8n, true);
      return decodeRequest(bytes.subarray(0, 12), bytes.subarray(12), [5]);
    }, 'BAD_PAYLOAD'],
    ['GET_CONFIG of 300 bytes', () => { const p = new Uint8Array(12 + 300); new DataView(p.buffer).setUint32(4, 300, true); const m = raw(24, p); return decodeRequest(m.header, m.payload, []); }, 'BAD_PAYLOAD'],
    ['GET_CONFIG whose size field disagrees', () => { const p = new Uint8Array(12 + 8); new DataView(p.buffer).setUint32(4, 4, true); const m = raw(24, p); return decodeRequest(m.header, m.payload, []); }, 'BAD_SIZE'],
    ['SET_STATUS past 8 bits', () => { const m = raw(39, u64payload(0x100n)); return decodeRequest(m.header, m.payload, []); }, 'BAD_PAYLOAD'],
    ['SET_INFLIGHT_FD without its fd', () => { const m = raw(32, new Uint8Array(24)); return decodeRequest(m.header, m.payload, []); }, 'BAD_FDS'],
  ];
  for (const [what, fn, code] of table) {
    it(`${what} → ${code}`, () => expect(codeOf(fn)).toBe(code));
  }

  it('a header announcing a huge payload is refused before anything is buffered for it', () => {
    const reader = new MessageReader();
    const m = raw(5, new Uint8Array(), 1, 0xffffffff);
    reader.push(m.header);
    expect(codeOf(() => reader.next())).toBe('BAD_SIZE');
  });

  it('fuzzed bytes never crash the framing or the decoder: typed error or a valid message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fd, { maxLength: 3 }), (bytes, fds) => {
        const reader = new MessageReader();
        try {
          reader.push(bytes, fds);
          for (let framed = reader.next(); framed; framed = reader.next()) decodeRequest(framed.header, framed.payload, framed.fds);
        } catch (error) {
          expect(VhostUserError.isInstance(error)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('REPLY_ACK: the need-reply flag is reported', () => {
    const { bytes } = encodeRequest({ type: 'SET_OWNER' }, { needReply: true });
    expect(new DataView(bytes.buffer).getUint32(4, true) & VHOST_USER_NEED_REPLY_MASK).toBeTruthy();
    expect(decodeRequest(bytes.subarray(0, 12), bytes.subarray(12), []).needReply).toBe(true);
  });
});
