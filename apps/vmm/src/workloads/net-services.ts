// The model guest's network services (what inetd would run): UDP echo (RFC 862) and the
// net-bench counter. Every model guest runs them on each net device for as long as its vCPU runs.
import type { UdpSocket } from '@virtio-ts/drivers';

/** UDP echo (RFC 862): every datagram is sent back to where it came from. */
export const ECHO_PORT = 7;
/** The net-bench counter (iperf's port). */
export const BENCH_PORT = 5001;

/**
 * net-bench control datagrams: "VTNB", an opcode, a 32-bit session nonce; END's reply adds the
 * datagrams and bytes the counter saw from that session (two float64, big-endian). Any other
 * datagram to the bench port is data and is counted for the session of its source address:port.
 */
const MAGIC = [0x56, 0x54, 0x4e, 0x42] as const;
export const BENCH_START = 1;
export const BENCH_END = 2;
export const BENCH_START_ACK = 0x81;
export const BENCH_END_REPLY = 0x82;
const CONTROL_SIZE = 9;
const END_REPLY_SIZE = CONTROL_SIZE + 16;
/** Sessions the counter keeps at once (one per sender address:port); the oldest is forgotten beyond it. */
const MAX_SESSIONS = 64;

/** A decoded control datagram. */
export interface BenchControl {
  readonly op: number;
  readonly nonce: number;
  /** END_REPLY only. */
  readonly packets?: number;
  readonly bytes?: number;
}

/** Encodes a control datagram (START, END, their replies). */
export function encodeBenchControl(control: BenchControl): Uint8Array {
  const reply = control.op === BENCH_END_REPLY;
  const bytes = new Uint8Array(reply ? END_REPLY_SIZE : CONTROL_SIZE);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  bytes[4] = control.op;
  view.setUint32(5, control.nonce >>> 0);
  if (reply) {
    view.setFloat64(9, control.packets ?? 0);
    view.setFloat64(17, control.bytes ?? 0);
  }
  return bytes;
}

/** Decodes a control datagram; undefined for data (or anything malformed: the network is untrusted). */
export function decodeBenchControl(bytes: Uint8Array): BenchControl | undefined {
  if (bytes.length < CONTROL_SIZE || MAGIC.some((b, i) => bytes[i] !== b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = bytes[4]!;
  const nonce = view.getUint32(5);
  if (op === BENCH_END_REPLY) {
    if (bytes.length < END_REPLY_SIZE) return undefined;
    const packets = view.getFloat64(9);
    const bytesCounted = view.getFloat64(17);
    if (!Number.isSafeInteger(packets) || !Number.isSafeInteger(bytesCounted) || packets < 0 || bytesCounted < 0) return undefined;
    return { op, nonce, packets, bytes: bytesCounted };
  }
  if (op !== BENCH_START && op !== BENCH_END && op !== BENCH_START_ACK) return undefined;
  return { op, nonce };
}

/** Answers every datagram on `socket` with the same bytes (RFC 862). */
export function serveEcho(socket: UdpSocket): void {
  socket.onMessage((message) => {
    socket.sendTo(message.address, message.port, message.data).catch(() => undefined);
  });
}

/**
 * The bench counter: START (re)opens the session of its source with zero counts and is
 * acknowledged; data datagrams of an open session are counted; END is answered with the counts.
 * Replies are sent again for repeated requests, so a sender may retry lost control datagrams.
 */
export function serveBench(socket: UdpSocket): void {
  const sessions = new Map<string, { nonce: number; packets: number; bytes: number }>();
  socket.onMessage((message) => {
    const key = `${message.address}:${message.port}`;
    const control = decodeBenchControl(message.data);
    if (control === undefined) {
      const session = sessions.get(key);
      if (session !== undefined) {
        session.packets++;
        session.bytes += message.data.length;
      }
      return;
    }
    const reply = (answer: BenchControl): void => void socket.sendTo(message.address, message.port, encodeBenchControl(answer)).catch(() => undefined);
    if (control.op === BENCH_START) {
      const session = sessions.get(key);
      if (session === undefined || session.nonce !== control.nonce) {
        sessions.delete(key);
        if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
        sessions.set(key, { nonce: control.nonce, packets: 0, bytes: 0 });
      }
      reply({ op: BENCH_START_ACK, nonce: control.nonce });
    } else if (control.op === BENCH_END) {
      const session = sessions.get(key);
      if (session !== undefined && session.nonce === control.nonce) reply({ op: BENCH_END_REPLY, nonce: control.nonce, packets: session.packets, bytes: session.bytes });
    }
  });
}
