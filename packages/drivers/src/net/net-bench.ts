import { DriverError } from '../errors.js';
import { decodeEthernet, encodeEthernet, ETHERNET_HEADER_SIZE, ETHERTYPE_EXPERIMENTAL } from './stack/ethernet.js';
import type { FrameLink } from './stack/frame-link.js';
import { nowMs, randomBytes, sleep } from './web-timers.js';

/** The frame sizes the `net-bench` workload reports: packets/s at 64 B, bandwidth at 1500 B and 64 KiB. */
export const NET_BENCH_FRAME_SIZES = [64, 1500, 65536] as const;

/** Bytes of the bench header after the Ethernet header: magic, run id, sequence number. */
const BENCH_HEADER_SIZE = 12;
/** "VTNB" */
const BENCH_MAGIC = 0x56544e42;
/** Smallest frame the bench sends: Ethernet header + bench header, padded to the 60-byte minimum. */
const MIN_BENCH_FRAME = 60;

/** Options of {@link runNetBench}. */
export interface NetBenchOptions {
  /** Ethernet frame length in bytes, header included, FCS excluded (60..mtu+14; 64 KiB needs an MTU ≥ 65522). */
  readonly frameSize: number;
  /** How long to send; default 1000 ms. */
  readonly durationMs?: number;
  /** After sending stops, how long to wait for frames still on the way; default 200 ms. */
  readonly drainMs?: number;
  /**
   * Send (and discard the figures) for this long first, so the JIT has compiled the path being
   * measured; default 0. Cold runs are several times slower (see README).
   */
  readonly warmupMs?: number;
}

/** What {@link runNetBench} measured. */
export interface NetBenchResult {
  readonly frameSize: number;
  /** Wall time from the first send to the last frame received (or to the end of sending). */
  readonly elapsedMs: number;
  readonly framesSent: number;
  readonly framesReceived: number;
  /** Sent and never received (dropped by a full queue, a switch, a device). */
  readonly framesLost: number;
  /** Received with a wrong length, payload or sequence (should be 0). */
  readonly framesCorrupt: number;
  /** Frames received per second. */
  readonly packetsPerSecond: number;
  /** Frame bytes (header included) received per second, times 8. */
  readonly bitsPerSecond: number;
  /** `send` calls the sender's link refused (back-pressure events). */
  readonly sendRefusals: number;
}

/**
 * The `net-bench` workload's building block: sends raw Ethernet II frames of `frameSize` bytes
 * from `sender` to `receiver` as fast as the sender's link accepts them for `durationMs`, and
 * counts what arrives. Frames carry EtherType 0x88B5 (IEEE 802 Local Experimental 1), a magic, a
 * per-run id and a sequence number, then a byte pattern; the receiver checks length, pattern and
 * order, so loss and corruption are reported, not hidden. Back-pressure: when `send` returns
 * false the bench waits for the link's `onWritable` (or 1 ms) and retries.
 *
 * Raw frames rather than UDP, so the figure is the driver/device/switch path, not the stack; the
 * links can be two {@link NetDriver}s on a switch, or a memory link pair.
 *
 * @example
 * ```ts
 * const result = await runNetBench(left, right, { frameSize: 64, durationMs: 1000 });
 * console.log(`${result.packetsPerSecond.toFixed(0)} pps, ${(result.bitsPerSecond / 1e6).toFixed(1)} Mbit/s`);
 * ```
 */
export async function runNetBench(sender: FrameLink, receiver: FrameLink, options: NetBenchOptions): Promise<NetBenchResult> {
  const { frameSize } = options;
  const maxFrame = Math.min(sender.mtu, receiver.mtu) + ETHERNET_HEADER_SIZE;
  if (!Number.isInteger(frameSize) || frameSize < MIN_BENCH_FRAME || frameSize > maxFrame) {
    throw new DriverError('INVALID_ARGUMENT', `bench frame size ${frameSize} is outside ${MIN_BENCH_FRAME}..${maxFrame} (the links' MTU + 14)`, { length: frameSize });
  }
  if (options.warmupMs !== undefined && options.warmupMs > 0) await runNetBench(sender, receiver, { frameSize, durationMs: options.warmupMs, drainMs: options.drainMs ?? 200 });
  const durationMs = options.durationMs ?? 1000;
  const drainMs = options.drainMs ?? 200;
  const runId = new DataView(randomBytes(4).buffer).getUint32(0);
  const template = encodeEthernet({ destination: receiver.mac, source: sender.mac, etherType: ETHERTYPE_EXPERIMENTAL, payload: new Uint8Array(frameSize - ETHERNET_HEADER_SIZE) });
  const body = ETHERNET_HEADER_SIZE + BENCH_HEADER_SIZE;
  for (let i = body; i < frameSize; i++) template[i] = i & 0xff;
  const header = new DataView(template.buffer, ETHERNET_HEADER_SIZE, BENCH_HEADER_SIZE);
  header.setUint32(0, BENCH_MAGIC);
  header.setUint32(4, runId);

  let received = 0;
  let corrupt = 0;
  let expected = 0;
  let lastReceivedAt = 0;
  const off = receiver.onFrame((frame) => {
    if (frame.length < body) return;
    const ethernet = decodeEthernet(frame);
    if (ethernet.etherType !== ETHERTYPE_EXPERIMENTAL) return;
    const view = new DataView(frame.buffer, frame.byteOffset + ETHERNET_HEADER_SIZE, BENCH_HEADER_SIZE);
    if (view.getUint32(0) !== BENCH_MAGIC || view.getUint32(4) !== runId) return;
    const sequence = view.getUint32(8);
    // Spot-check the pattern at both ends and the middle: a full compare would bench memcmp.
    const ok =
      frame.length === frameSize &&
      sequence >= expected &&
      [body, (body + frameSize) >>> 1, frameSize - 1].every((i) => i >= frameSize || frame[i] === (i & 0xff));
    if (!ok) corrupt++;
    else received++;
    expected = sequence + 1;
    lastReceivedAt = nowMs();
  });

  let writable: (() => void) | undefined;
  const offWritable = sender.onWritable(() => writable?.());
  let sent = 0;
  let refusals = 0;
  const started = nowMs();
  const stopAt = started + durationMs;
  let yieldAt = started + 5;
  try {
    let frame = nextFrame(template, sent);
    for (let now = started; now < stopAt; now = nowMs()) {
      if (sender.send(frame)) {
        sent++;
        frame = nextFrame(template, sent);
        if (now >= yieldAt) {
          await sleep(0); // let timers and other tasks run
          yieldAt = nowMs() + 5;
        } else if ((sent & 15) === 0) {
          await Promise.resolve(); // let microtask deliveries run
        }
        continue;
      }
      refusals++;
      await new Promise<void>((resolve) => {
        writable = resolve;
        void sleep(1).then(resolve);
      });
      writable = undefined;
    }
    const sendingEnded = nowMs();
    // Drain: wait until nothing more arrives (or drainMs passes).
    for (let waited = 0, last = -1; waited < drainMs && received + corrupt < sent; waited += 5) {
      if (received + corrupt === last && waited >= 20) break;
      last = received + corrupt;
      await sleep(5);
    }
    const elapsedMs = Math.max(lastReceivedAt, sendingEnded) - started;
    const seconds = Math.max(elapsedMs, 1e-3) / 1000;
    return {
      frameSize,
      elapsedMs,
      framesSent: sent,
      framesReceived: received,
      framesLost: Math.max(0, sent - received - corrupt),
      framesCorrupt: corrupt,
      packetsPerSecond: received / seconds,
      bitsPerSecond: (received * frameSize * 8) / seconds,
      sendRefusals: refusals,
    };
  } finally {
    off();
    offWritable();
  }
}

/** A fresh copy of the template with sequence `n` (links may keep a frame until it is on the wire). */
function nextFrame(template: Uint8Array, n: number): Uint8Array {
  const frame = template.slice();
  new DataView(frame.buffer).setUint32(ETHERNET_HEADER_SIZE + 8, n >>> 0);
  return frame;
}
