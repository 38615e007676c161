import {
  HEADER_SIZE, MAX_FDS_PER_MESSAGE, MAX_PAYLOAD_SIZE, REQUEST_NAMES, VHOST_MEMORY_BASELINE_NREGIONS, VHOST_USER_MAX_CONFIG_SIZE,
  VHOST_USER_NEED_REPLY_MASK, VHOST_USER_REPLY_MASK, VHOST_USER_VERSION, VHOST_USER_VERSION_MASK, VHOST_USER_VRING_IDX_MASK,
  VHOST_USER_VRING_NOFD_MASK, VhostUserRequest, type VhostUserRequestName,
} from './constants.js';
import { VhostUserError } from './errors.js';

/** One guest memory region of SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG. */
export interface MemoryRegionDescription {
  /** Guest-physical address (validated: the region ends at or below 2^53). */
  readonly guestAddress: number;
  readonly size: number;
  /** The front-end's virtual address of the region: ring addresses are given in this space. */
  readonly userAddress: bigint;
  /** Offset of the region inside the fd's mapping. */
  readonly mmapOffset: number;
}

type Bare = 'GET_FEATURES' | 'GET_PROTOCOL_FEATURES' | 'SET_OWNER' | 'RESET_OWNER' | 'GET_QUEUE_NUM' | 'RESET_DEVICE' | 'GET_MAX_MEM_SLOTS' | 'GET_STATUS';
type VringState = 'SET_VRING_NUM' | 'SET_VRING_BASE' | 'GET_VRING_BASE' | 'SET_VRING_ENABLE' | 'VRING_KICK';
type VringFile = 'SET_VRING_KICK' | 'SET_VRING_CALL' | 'SET_VRING_ERR';

/** A decoded front-end request, discriminated by `type` (the spec's request name without VHOST_USER_). */
export type VhostUserMessage =
  | { readonly type: Bare }
  | { readonly type: 'SET_FEATURES' | 'SET_PROTOCOL_FEATURES'; readonly value: bigint }
  | { readonly type: 'SET_STATUS'; readonly status: number }
  | { readonly type: 'NET_SET_MTU'; readonly mtu: number }
  | { readonly type: 'SET_MEM_TABLE'; readonly regions: readonly MemoryRegionDescription[]; readonly fds: readonly number[] }
  | { readonly type: 'ADD_MEM_REG'; readonly region: MemoryRegionDescription; readonly fd: number }
  | { readonly type: 'REM_MEM_REG'; readonly region: MemoryRegionDescription }
  | { readonly type: VringState; readonly index: number; readonly num: number }
  | {
      readonly type: 'SET_VRING_ADDR';
      readonly index: number;
      readonly flags: number;
      readonly descUserAddress: bigint;
      readonly usedUserAddress: bigint;
      readonly availUserAddress: bigint;
      readonly logGuestAddress: bigint;
    }
  | { readonly type: VringFile; readonly index: number; readonly fd: number | null }
  | { readonly type: 'GET_CONFIG' | 'SET_CONFIG'; readonly offset: number; readonly size: number; readonly flags: number; readonly payload: Uint8Array }
  | { readonly type: 'GET_INFLIGHT_FD'; readonly mmapSize: number; readonly mmapOffset: number; readonly numQueues: number; readonly queueSize: number }
  | {
      readonly type: 'SET_INFLIGHT_FD';
      readonly mmapSize: number;
      readonly mmapOffset: number;
      readonly numQueues: number;
      readonly queueSize: number;
      readonly fd: number;
    };

/** A request as it came off the wire: the decoded message and whether a REPLY_ACK was asked for. */
export interface DecodedRequest {
  readonly message: VhostUserMessage;
  readonly needReply: boolean;
  readonly flags: number;
}

const BARE: readonly string[] = ['GET_FEATURES', 'GET_PROTOCOL_FEATURES', 'SET_OWNER', 'RESET_OWNER', 'GET_QUEUE_NUM', 'RESET_DEVICE', 'GET_MAX_MEM_SLOTS', 'GET_STATUS'];
const VRING_STATE: readonly string[] = ['SET_VRING_NUM', 'SET_VRING_BASE', 'GET_VRING_BASE', 'SET_VRING_ENABLE', 'VRING_KICK'];
const VRING_FILE: readonly string[] = ['SET_VRING_KICK', 'SET_VRING_CALL', 'SET_VRING_ERR'];
const REGION_SIZE = 32;
const INFLIGHT_MIN = 20; // u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size
const INFLIGHT_MAX = 24; // QEMU sends sizeof(VhostUserInflight), padded to 8
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function expectSize(name: string, size: number, expected: number): void {
  if (size !== expected) throw new VhostUserError('BAD_SIZE', `${name} carries ${expected} payload bytes, got ${size}`, { request: name, size });
}

function expectFds(name: string, fds: readonly number[], expected: number): void {
  if (fds.length !== expected) throw new VhostUserError('BAD_FDS', `${name} carries ${expected} file descriptor(s), got ${fds.length}`, { request: name });
}

function safeNumber(name: string, field: string, value: bigint): number {
  if (value > MAX_SAFE) throw new VhostUserError('BAD_PAYLOAD', `${field} 0x${value.toString(16)} is past 2^53`, { request: name });
  return Number(value);
}

function decodeRegion(name: string, view: DataView, at: number): MemoryRegionDescription {
  const guestAddress = safeNumber(name, 'guest address', view.getBigUint64(at, true));
  const size = safeNumber(name, 'region size', view.getBigUint64(at + 8, true));
  const userAddress = view.getBigUint64(at + 16, true);
  const mmapOffset = safeNumber(name, 'mmap offset', view.getBigUint64(at + 24, true));
  if (size === 0) throw new VhostUserError('BAD_PAYLOAD', 'memory region of size 0', { request: name });
  if (guestAddress + size > Number.MAX_SAFE_INTEGER + 1) throw new VhostUserError('BAD_PAYLOAD', 'memory region ends past 2^53', { request: name });
  if (userAddress + BigInt(size) > 0xffffffffffffffffn) throw new VhostUserError('BAD_PAYLOAD', 'memory region user address range wraps', { request: name });
  return { guestAddress, size, userAddress, mmapOffset };
}

/**
 * Decodes one request: a 12-byte header, its payload and the fds that came with it. Throws a
 * {@link VhostUserError} for anything malformed; the caller closes the fds it gave (they are
 * never adopted on error) and then the connection.
 */
export function decodeRequest(header: Uint8Array, payload: Uint8Array, fds: readonly number[]): DecodedRequest {
  if (header.length !== HEADER_SIZE) throw new VhostUserError('BAD_SIZE', `header is ${HEADER_SIZE} bytes, got ${header.length}`);
  const h = new DataView(header.buffer, header.byteOffset, HEADER_SIZE);
  const request = h.getUint32(0, true);
  const flags = h.getUint32(4, true);
  const size = h.getUint32(8, true);
  const name = REQUEST_NAMES.get(request);
  if (name === undefined) throw new VhostUserError('UNKNOWN_REQUEST', `unknown request ${request}`, { request });
  if ((flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION) throw new VhostUserError('BAD_VERSION', `unsupported protocol version ${flags & VHOST_USER_VERSION_MASK}`, { request: name });
  if (flags & VHOST_USER_REPLY_MASK) throw new VhostUserError('BAD_VERSION', 'a request with the reply flag set', { request: name });
  if (size !== payload.length) throw new VhostUserError('BAD_SIZE', `header says ${size} payload bytes, got ${payload.length}`, { request: name, size });
  if (size > MAX_PAYLOAD_SIZE) throw new VhostUserError('BAD_SIZE', `payload of ${size} bytes exceeds ${MAX_PAYLOAD_SIZE}`, { request: name, size });
  if (fds.length > MAX_FDS_PER_MESSAGE) throw new VhostUserError('BAD_FDS', `${fds.length} fds in one message`, { request: name });
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const needReply = (flags & VHOST_USER_NEED_REPLY_MASK) !== 0;
  const message = decodePayload(name, view, payload, fds);
  return { message, needReply, flags };
}

function decodePayload(name: VhostUserRequestName, view: DataView, payload: Uint8Array, fds: readonly number[]): VhostUserMessage {
  const size = payload.length;
  if (BARE.includes(name)) {
    expectSize(name, size, 0);
    expectFds(name, fds, 0);
    return { type: name as Bare };
  }
  if (VRING_STATE.includes(name)) {
    expectSize(name, size, 8);
    expectFds(name, fds, 0);
    return { type: name as VringState, index: view.getUint32(0, true), num: view.getUint32(4, true) };
  }
  if (VRING_FILE.includes(name)) {
    expectSize(name, size, 8);
    const value = view.getBigUint64(0, true);
    if (value & ~BigInt(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) {
      throw new VhostUserError('BAD_PAYLOAD', `reserved bits set in 0x${value.toString(16)}`, { request: name });
    }
    const noFd = (value & BigInt(VHOST_USER_VRING_NOFD_MASK)) !== 0n;
    expectFds(name, fds, noFd ? 0 : 1);
    return { type: name as VringFile, index: Number(value & BigInt(VHOST_USER_VRING_IDX_MASK)), fd: noFd ? null : fds[0]! };
  }
  switch (name) {
    case 'SET_FEATURES':
    case 'SET_PROTOCOL_FEATURES':
      expectSize(name, size, 8);
      expectFds(name, fds, 0);
      return { type: name, value: view.getBigUint64(0, true) };
    case 'SET_STATUS': {
      expectSize(name, size, 8);
      expectFds(name, fds, 0);
      const status = view.getBigUint64(0, true);
      if (status > 0xffn) throw new VhostUserError('BAD_PAYLOAD', `device status 0x${status.toString(16)} does not fit 8 bits`, { request: name });
      return { type: name, status: Number(status) };
    }
    case 'NET_SET_MTU': {
      expectSize(name, size, 8);
      expectFds(name, fds, 0);
      const mtu = view.getBigUint64(0, true);
      if (mtu > 0xffffn) throw new VhostUserError('BAD_PAYLOAD', `MTU ${mtu} does not fit 16 bits`, { request: name });
      return { type: name, mtu: Number(mtu) };
    }
    case 'SET_MEM_TABLE': {
      if (size < 8) throw new VhostUserError('BAD_SIZE', 'SET_MEM_TABLE shorter than its region count', { request: name, size });
      const count = view.getUint32(0, true);
      if (count === 0 || count > VHOST_MEMORY_BASELINE_NREGIONS) {
        throw new VhostUserError('BAD_PAYLOAD', `SET_MEM_TABLE with ${count} regions (1..${VHOST_MEMORY_BASELINE_NREGIONS})`, { request: name });
      }
      expectSize(name, size, 8 + REGION_SIZE * count);
      expectFds(name, fds, count);
      const regions: MemoryRegionDescription[] = [];
      for (let i = 0; i < count; i++) regions.push(decodeRegion(name, view, 8 + REGION_SIZE * i));
      return { type: name, regions, fds: [...fds] };
    }
    case 'ADD_MEM_REG':
      expectSize(name, size, 8 + REGION_SIZE);
      expectFds(name, fds, 1);
      return { type: name, region: decodeRegion(name, view, 8), fd: fds[0]! };
    case 'REM_MEM_REG':
      expectSize(name, size, 8 + REGION_SIZE);
      // The spec allows (and says to close) one stray fd for compatibility; the caller closes it.
      if (fds.length > 1) expectFds(name, fds, 1);
      return { type: name, region: decodeRegion(name, view, 8) };
    case 'SET_VRING_ADDR':
      expectSize(name, size, 40);
      expectFds(name, fds, 0);
      return {
        type: name,
        index: view.getUint32(0, true),
        flags: view.getUint32(4, true),
        descUserAddress: view.getBigUint64(8, true),
        usedUserAddress: view.getBigUint64(16, true),
        availUserAddress: view.getBigUint64(24, true),
        logGuestAddress: view.getBigUint64(32, true),
      };
    case 'GET_CONFIG':
    case 'SET_CONFIG': {
      if (size < 12) throw new VhostUserError('BAD_SIZE', `${name} shorter than its 12-byte header`, { request: name, size });
      expectFds(name, fds, 0);
      const offset = view.getUint32(0, true);
      const length = view.getUint32(4, true);
      const flags = view.getUint32(8, true);
      if (length > VHOST_USER_MAX_CONFIG_SIZE) throw new VhostUserError('BAD_PAYLOAD', `config access of ${length} bytes (max ${VHOST_USER_MAX_CONFIG_SIZE})`, { request: name });
      expectSize(name, size, 12 + length);
      if (offset + length > VHOST_USER_MAX_CONFIG_SIZE) throw new VhostUserError('BAD_PAYLOAD', `config access ${offset}+${length} past ${VHOST_USER_MAX_CONFIG_SIZE}`, { request: name });
      return { type: name, offset, size: length, flags, payload: payload.slice(12, 12 + length) };
    }
    case 'GET_INFLIGHT_FD':
    case 'SET_INFLIGHT_FD': {
      if (size < INFLIGHT_MIN || size > INFLIGHT_MAX) throw new VhostUserError('BAD_SIZE', `${name} carries ${INFLIGHT_MIN}..${INFLIGHT_MAX} bytes, got ${size}`, { request: name, size });
      const fields = {
        mmapSize: safeNumber(name, 'mmap size', view.getBigUint64(0, true)),
        mmapOffset: safeNumber(name, 'mmap offset', view.getBigUint64(8, true)),
        numQueues: view.getUint16(16, true),
        queueSize: view.getUint16(18, true),
      };
      if (name === 'GET_INFLIGHT_FD') {
        expectFds(name, fds, 0);
        return { type: name, ...fields };
      }
      expectFds(name, fds, 1);
      return { type: name, ...fields, fd: fds[0]! };
    }
    default:
      throw new VhostUserError('UNKNOWN_REQUEST', `${name} is not implemented by this back-end`, { request: name });
  }
}

function header(request: number, flags: number, size: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, request, true);
  view.setUint32(4, flags, true);
  view.setUint32(8, size, true);
  return bytes;
}

/** An encoded message and the fds to send with it. */
export interface EncodedMessage {
  readonly bytes: Uint8Array;
  readonly fds: readonly number[];
}

/** Encodes a front-end request (used by our vhost-user front-end and by tests). */
export function encodeRequest(message: VhostUserMessage, options: { needReply?: boolean } = {}): EncodedMessage {
  const id = VhostUserRequest[message.type];
  const flags = VHOST_USER_VERSION | (options.needReply ? VHOST_USER_NEED_REPLY_MASK : 0);
  const withPayload = (size: number, fill: (view: DataView, bytes: Uint8Array) => void, fds: readonly number[] = []): EncodedMessage => {
    const bytes = header(id, flags, size);
    fill(new DataView(bytes.buffer, HEADER_SIZE), bytes.subarray(HEADER_SIZE));
    return { bytes, fds };
  };
  const region = (v: DataView, at: number, r: MemoryRegionDescription): void => {
    v.setBigUint64(at, BigInt(r.guestAddress), true);
    v.setBigUint64(at + 8, BigInt(r.size), true);
    v.setBigUint64(at + 16, r.userAddress, true);
    v.setBigUint64(at + 24, BigInt(r.mmapOffset), true);
  };
  switch (message.type) {
    case 'SET_FEATURES':
    case 'SET_PROTOCOL_FEATURES':
      return withPayload(8, (v) => v.setBigUint64(0, message.value, true));
    case 'SET_STATUS':
      return withPayload(8, (v) => v.setBigUint64(0, BigInt(message.status), true));
    case 'NET_SET_MTU':
      return withPayload(8, (v) => v.setBigUint64(0, BigInt(message.mtu), true));
    case 'SET_MEM_TABLE':
      return withPayload(8 + REGION_SIZE * message.regions.length, (v) => {
        v.setUint32(0, message.regions.length, true);
        message.regions.forEach((r, i) => region(v, 8 + REGION_SIZE * i, r));
      }, message.fds);
    case 'ADD_MEM_REG':
      return withPayload(8 + REGION_SIZE, (v) => region(v, 8, message.region), [message.fd]);
    case 'REM_MEM_REG':
      return withPayload(8 + REGION_SIZE, (v) => region(v, 8, message.region));
    case 'SET_VRING_NUM':
    case 'SET_VRING_BASE':
    case 'GET_VRING_BASE':
    case 'SET_VRING_ENABLE':
    case 'VRING_KICK':
      return withPayload(8, (v) => {
        v.setUint32(0, message.index, true);
        v.setUint32(4, message.num, true);
      });
    case 'SET_VRING_ADDR':
      return withPayload(40, (v) => {
        v.setUint32(0, message.index, true);
        v.setUint32(4, message.flags, true);
        v.setBigUint64(8, message.descUserAddress, true);
        v.setBigUint64(16, message.usedUserAddress, true);
        v.setBigUint64(24, message.availUserAddress, true);
        v.setBigUint64(32, message.logGuestAddress, true);
      });
    case 'SET_VRING_KICK':
    case 'SET_VRING_CALL':
    case 'SET_VRING_ERR':
      return withPayload(
        8,
        (v) => v.setBigUint64(0, BigInt(message.index | (message.fd === null ? VHOST_USER_VRING_NOFD_MASK : 0)), true),
        message.fd === null ? [] : [message.fd],
      );
    case 'GET_CONFIG':
    case 'SET_CONFIG':
      return withPayload(12 + message.size, (v, b) => {
        v.setUint32(0, message.offset, true);
        v.setUint32(4, message.size, true);
        v.setUint32(8, message.flags, true);
        b.set(message.payload.subarray(0, message.size), 12);
      });
    case 'GET_INFLIGHT_FD':
    case 'SET_INFLIGHT_FD':
      return withPayload(INFLIGHT_MAX, (v) => {
        v.setBigUint64(0, BigInt(message.mmapSize), true);
        v.setBigUint64(8, BigInt(message.mmapOffset), true);
        v.setUint16(16, message.numQueues, true);
        v.setUint16(18, message.queueSize, true);
      }, message.type === 'SET_INFLIGHT_FD' ? [message.fd] : []);
    default:
      return { bytes: header(id, flags, 0), fds: [] };
  }
}

/** A reply's payload: a u64, a vring state, config bytes, or an inflight description (+ fd). */
export type ReplyPayload =
  | { readonly kind: 'u64'; readonly value: bigint }
  | { readonly kind: 'state'; readonly index: number; readonly num: number }
  | { readonly kind: 'config'; readonly offset: number; readonly flags: number; readonly data: Uint8Array }
  /** `fd` null with `mmapSize` 0: no buffer (the front-end then tracks nothing). */
  | { readonly kind: 'inflight'; readonly mmapSize: number; readonly mmapOffset: number; readonly numQueues: number; readonly queueSize: number; readonly fd: number | null };

/** Encodes the back-end's reply to request `type` (REPLY flag set). */
export function encodeReply(type: VhostUserRequestName, payload: ReplyPayload): EncodedMessage {
  const id = VhostUserRequest[type];
  const flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
  switch (payload.kind) {
    case 'u64': {
      const bytes = header(id, flags, 8);
      new DataView(bytes.buffer).setBigUint64(HEADER_SIZE, payload.value, true);
      return { bytes, fds: [] };
    }
    case 'state': {
      const bytes = header(id, flags, 8);
      const v = new DataView(bytes.buffer);
      v.setUint32(HEADER_SIZE, payload.index, true);
      v.setUint32(HEADER_SIZE + 4, payload.num, true);
      return { bytes, fds: [] };
    }
    case 'config': {
      // A zero-length payload tells the front-end the config access failed.
      const size = payload.data.length === 0 ? 0 : 12 + payload.data.length;
      const bytes = header(id, flags, size);
      if (size > 0) {
        const v = new DataView(bytes.buffer);
        v.setUint32(HEADER_SIZE, payload.offset, true);
        v.setUint32(HEADER_SIZE + 4, payload.data.length, true);
        v.setUint32(HEADER_SIZE + 8, payload.flags, true);
        bytes.set(payload.data, HEADER_SIZE + 12);
      }
      return { bytes, fds: [] };
    }
    case 'inflight': {
      const bytes = header(id, flags, INFLIGHT_MAX);
      const v = new DataView(bytes.buffer);
      v.setBigUint64(HEADER_SIZE, BigInt(payload.mmapSize), true);
      v.setBigUint64(HEADER_SIZE + 8, BigInt(payload.mmapOffset), true);
      v.setUint16(HEADER_SIZE + 16, payload.numQueues, true);
      v.setUint16(HEADER_SIZE + 18, payload.queueSize, true);
      return { bytes, fds: payload.fd === null ? [] : [payload.fd] };
    }
  }
}

/** A reply as read by a front-end. */
export interface DecodedReply {
  readonly request: number;
  readonly payload: Uint8Array;
  readonly fds: readonly number[];
}

/** Checks and splits a back-end reply (front-end side). */
export function decodeReply(headerBytes: Uint8Array, payload: Uint8Array, fds: readonly number[], expected: VhostUserRequestName): DecodedReply {
  const h = new DataView(headerBytes.buffer, headerBytes.byteOffset, HEADER_SIZE);
  const request = h.getUint32(0, true);
  const flags = h.getUint32(4, true);
  if (request !== VhostUserRequest[expected]) throw new VhostUserError('PROTOCOL_VIOLATION', `reply to ${request}, expected ${expected}`, { request });
  if ((flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION || !(flags & VHOST_USER_REPLY_MASK)) {
    throw new VhostUserError('BAD_VERSION', 'reply without the reply flag or with a bad version', { request: expected });
  }
  if (h.getUint32(8, true) !== payload.length) throw new VhostUserError('BAD_SIZE', 'reply size mismatch', { request: expected });
  return { request, payload, fds };
}
