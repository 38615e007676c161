import type { UdpMessage, UdpSocket } from '@virtio-ts/drivers';
import type { NetBenchWorkloadConfig, PingWorkloadConfig, UdpEchoWorkloadConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import type { GuestNet, WorkloadContext } from './guest-devices.js';
import { BENCH_END, BENCH_END_REPLY, BENCH_START, BENCH_START_ACK, decodeBenchControl, encodeBenchControl } from './net-services.js';

/** IPv4 header (20) + UDP header (8): a net-bench packet of `size` carries `size - 28` bytes. */
export const IPV4_UDP_OVERHEAD = 28;

/** Round-trip times of the replies that came back. */
export interface RoundTrips {
  readonly minMs: number;
  readonly avgMs: number;
  readonly maxMs: number;
}

export interface PingResult {
  readonly type: 'ping';
  readonly net: number;
  readonly peer: string;
  /** ICMP data bytes per request. */
  readonly size: number;
  readonly transmitted: number;
  /** Replies whose identifier, sequence and data matched the request. */
  readonly received: number;
  readonly rtt?: RoundTrips;
}

export interface UdpEchoResult {
  readonly type: 'udp-echo';
  readonly net: number;
  readonly peer: string;
  readonly port: number;
  readonly size: number;
  readonly sent: number;
  /** Echoes received with exactly the bytes sent. */
  readonly echoed: number;
  readonly rtt?: RoundTrips;
}

export interface NetBenchResult {
  readonly type: 'net-bench';
  readonly net: number;
  readonly peer: string;
  /** IPv4 packet size (header + UDP + payload). */
  readonly size: number;
  /** Datagrams handed to the NIC, and their IP bytes. */
  readonly sentPackets: number;
  readonly sentBytes: number;
  /** Datagrams the peer's counter received during the session, and their IP bytes. */
  readonly receivedPackets: number;
  readonly receivedBytes: number;
  /** From the first data datagram to the peer's END reply, ns. */
  readonly elapsedNs: number;
}

function roundTrips(rtts: readonly number[]): RoundTrips | undefined {
  if (rtts.length === 0) return undefined;
  return { minMs: Math.min(...rtts), avgMs: rtts.reduce((a, b) => a + b, 0) / rtts.length, maxMs: Math.max(...rtts) };
}

function peerOf(config: { peer?: string | undefined }): string {
  if (config.peer === undefined) throw new VmmError('INTERNAL', 'net workload without a resolved peer');
  return config.peer;
}

/**
 * `ping`: ICMP echo requests to the peer, one after another (as `ping -c count -s size`). A reply
 * counts only when its identifier, sequence and data match. No reply at all fails the run
 * (100% loss, ping's exit status 1); partial loss is reported.
 */
export async function runPing(context: WorkloadContext, config: PingWorkloadConfig): Promise<PingResult> {
  const { stack } = context.net(config.net);
  const peer = peerOf(config);
  const rtts: number[] = [];
  let transmitted = 0;
  // One request per call, so progress moves and the first (ARP-resolving) request gets the full timeout.
  for (let i = 0; i < config.count; i++) {
    const started = Date.now();
    const result = await stack.ping(peer, { count: 1, size: config.size, timeoutMs: config.timeout });
    transmitted += result.transmitted;
    for (const rtt of result.rttMs) if (rtt !== null) rtts.push(rtt);
    context.progress((i + 1) / config.count);
    // `ping -i`: the next request `interval` after this one went out (at once when a reply was late).
    const wait = config.interval === undefined || i + 1 === config.count ? 0 : started + config.interval - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  if (rtts.length === 0) throw new VmmError('GUEST_ERROR', `ping: no reply from ${peer} to ${transmitted} echo requests (net ${config.net})`);
  return { type: 'ping', net: config.net, peer, size: config.size, transmitted, received: rtts.length, ...(roundTrips(rtts) === undefined ? {} : { rtt: roundTrips(rtts)! }) };
}

/** Binds a free ephemeral port (49152–65535, as IANA's dynamic range). */
function bindEphemeral(net: GuestNet): UdpSocket {
  const start = 49152 + Math.floor(Math.random() * 16384);
  for (let i = 0; i < 16384; i++) {
    const port = 49152 + ((start - 49152 + i) % 16384);
    try {
      return net.stack.bindUdp(port);
    } catch {
      // taken: try the next one
    }
  }
  throw new VmmError('GUEST_ERROR', 'no free UDP port');
}

/** The next datagram on `socket` that `accept` takes, or undefined after `timeoutMs`. */
function receive(socket: UdpSocket, timeoutMs: number, accept: (message: UdpMessage) => boolean): Promise<UdpMessage | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(undefined);
    }, timeoutMs);
    const off = socket.onMessage((message) => {
      if (!accept(message)) return;
      clearTimeout(timer);
      off();
      resolve(message);
    });
  });
}

/** Payload of echo datagram `sequence`: its number, then a pattern that differs per datagram. */
function echoPayload(size: number, sequence: number, seed: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + sequence * 7 + seed) & 0xff;
  if (size >= 4) new DataView(data.buffer).setUint32(0, sequence);
  return data;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * `udp-echo`: datagrams of `size` bytes to the peer's echo port, one after another; each echo must
 * come back from the peer with exactly the bytes sent (a different payload fails the run with
 * GUEST_ERROR). No echo at all fails the run; lost echoes are reported.
 */
export async function runUdpEcho(context: WorkloadContext, config: UdpEchoWorkloadConfig, seed: number): Promise<UdpEchoResult> {
  const net = context.net(config.net);
  const peer = peerOf(config);
  const socket = bindEphemeral(net);
  const rtts: number[] = [];
  try {
    for (let sequence = 0; sequence < config.count; sequence++) {
      const sent = echoPayload(config.size, sequence, seed);
      const started = performance.now();
      const answer = receive(socket, config.timeout, (m) => m.address === peer && m.port === config.port && (config.size < 4 || new DataView(m.data.buffer, m.data.byteOffset).getUint32(0) === sequence));
      await socket.sendTo(peer, config.port, sent);
      const echo = await answer;
      if (echo !== undefined) {
        if (!bytesEqual(echo.data, sent)) {
          throw new VmmError('GUEST_ERROR', `udp-echo: the echo of datagram ${sequence} from ${peer}:${config.port} differs from what was sent (${echo.data.length} bytes, sent ${sent.length})`);
        }
        rtts.push(performance.now() - started);
      }
      context.progress((sequence + 1) / config.count);
    }
  } finally {
    socket.close();
  }
  if (rtts.length === 0) throw new VmmError('GUEST_ERROR', `udp-echo: no echo from ${peer}:${config.port} for ${config.count} datagrams (net ${config.net})`);
  return { type: 'udp-echo', net: config.net, peer, port: config.port, size: config.size, sent: config.count, echoed: rtts.length, ...(roundTrips(rtts) === undefined ? {} : { rtt: roundTrips(rtts)! }) };
}

/** Control exchanges are retried this often, each waiting this long. */
const CONTROL_ATTEMPTS = 10;
const CONTROL_TIMEOUT_MS = 500;

async function control(socket: UdpSocket, peer: string, port: number, op: number, nonce: number): Promise<{ packets?: number; bytes?: number }> {
  const expected = op === BENCH_START ? BENCH_START_ACK : BENCH_END_REPLY;
  for (let attempt = 0; attempt < CONTROL_ATTEMPTS; attempt++) {
    const answer = receive(socket, CONTROL_TIMEOUT_MS, (m) => {
      const c = m.address === peer && m.port === port ? decodeBenchControl(m.data) : undefined;
      return c !== undefined && c.op === expected && c.nonce === nonce;
    });
    await socket.sendTo(peer, port, encodeBenchControl({ op, nonce }));
    const message = await answer;
    if (message !== undefined) return decodeBenchControl(message.data)!;
  }
  throw new VmmError('GUEST_ERROR', `net-bench: ${peer}:${port} did not answer ${op === BENCH_START ? 'START' : 'END'} (${CONTROL_ATTEMPTS} attempts)`);
}

/**
 * `net-bench`: UDP datagrams of `size` IP bytes to the peer's bench counter for `runtime`, as fast
 * as the transmitq takes them (the sender waits while it is full, as a socket blocks). The peer
 * counts what arrives between START and END; packets/s and bandwidth are what the peer received
 * over the time from the first datagram to its END reply.
 */
export async function runNetBench(context: WorkloadContext, config: NetBenchWorkloadConfig, seed: number): Promise<NetBenchResult> {
  const net = context.net(config.net);
  const peer = peerOf(config);
  const socket = bindEphemeral(net);
  const nonce = (seed ^ Math.floor(Math.random() * 2 ** 32)) >>> 0;
  const payload = new Uint8Array(config.size - IPV4_UDP_OVERHEAD);
  let sentPackets = 0;
  try {
    await control(socket, peer, config.port, BENCH_START, nonce);
    const start = performance.now();
    const deadline = start + config.runtime;
    let lastProgress = start;
    let now = start;
    while (now < deadline) {
      if (net.full) await net.writable();
      await socket.sendTo(peer, config.port, payload);
      sentPackets++;
      // Yield to the event loop now and then, so interrupts and timers run between bursts.
      if ((sentPackets & 63) === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      now = performance.now();
      if (now - lastProgress > 100) {
        lastProgress = now;
        context.progress(Math.min(1, (now - start) / config.runtime));
      }
    }
    const counts = await control(socket, peer, config.port, BENCH_END, nonce);
    const elapsedNs = (performance.now() - start) * 1e6;
    const receivedPackets = counts.packets ?? 0;
    return {
      type: 'net-bench',
      net: config.net,
      peer,
      size: config.size,
      sentPackets,
      sentBytes: sentPackets * config.size,
      receivedPackets,
      // The counter sees UDP payloads: add the IP and UDP headers back.
      receivedBytes: (counts.bytes ?? 0) + receivedPackets * IPV4_UDP_OVERHEAD,
      elapsedNs,
    };
  } finally {
    socket.close();
  }
}
