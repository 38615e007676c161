// QEMU's `-netdev stream` / `-netdev socket` framing (net/stream.c): every Ethernet frame is
// preceded by its length as a 4-byte big-endian integer; no virtio_net_hdr, no FCS.

import { BackendError } from '../errors.js';

/** Bytes of the length prefix. */
export const STREAM_LENGTH_SIZE = 4;
/**
 * Longest frame accepted: a 64 KiB IP datagram plus the Ethernet header. The peer is untrusted,
 * so a length above this (or 0) is a protocol error, never an allocation of that size.
 */
export const STREAM_MAX_FRAME = 65535 + 14;

/** Prepends the 4-byte big-endian length to a frame given as segments. */
export function encodeStreamFrame(segments: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const s of segments) length += s.length;
  const out = new Uint8Array(STREAM_LENGTH_SIZE + length);
  new DataView(out.buffer).setUint32(0, length, false);
  let at = STREAM_LENGTH_SIZE;
  for (const s of segments) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}

/**
 * Incremental decoder of length-prefixed frames from a byte stream: chunks may split a length or
 * a frame anywhere and carry several frames. Holds at most one incomplete frame
 * (≤ {@link STREAM_MAX_FRAME} + 4 bytes) beyond the chunks given.
 *
 * Pull-based so a receiver without buffers can stop taking frames: `push` a chunk, then call
 * `next` until it returns undefined.
 */
export class StreamFrameDecoder {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private offset = 0;
  private buffered = 0;
  private readonly lengthBytes = new Uint8Array(STREAM_LENGTH_SIZE);

  constructor(private readonly maxFrame = STREAM_MAX_FRAME) {}

  /** Bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame, or undefined when more bytes are needed. The frame is a view of the
   * pushed chunk when it lies within one, else a copy. Throws BackendError PEER_PROTOCOL for a
   * length of 0 or above the maximum (the stream cannot be resynchronised after that: close the
   * connection). Runts (1..13 bytes) are returned; dropping them is the caller's choice.
   */
  next(): Uint8Array | undefined {
    if (this.buffered < STREAM_LENGTH_SIZE) return undefined;
    this.peek(this.lengthBytes, STREAM_LENGTH_SIZE);
    const length = ((this.lengthBytes[0]! << 24) >>> 0) + (this.lengthBytes[1]! << 16) + (this.lengthBytes[2]! << 8) + this.lengthBytes[3]!;
    if (length === 0 || length > this.maxFrame) {
      throw new BackendError('PEER_PROTOCOL', `stream frame length ${length} outside 1..${this.maxFrame}`, { device: 'stream', field: 'length' });
    }
    if (this.buffered < STREAM_LENGTH_SIZE + length) return undefined;
    this.skip(STREAM_LENGTH_SIZE);
    const first = this.chunks[this.head]!;
    let frame: Uint8Array;
    if (first.length - this.offset >= length) {
      // A plain Uint8Array view (not a Buffer slice: receivers see one type).
      frame = new Uint8Array(first.buffer, first.byteOffset + this.offset, length);
      this.skip(length);
    } else {
      frame = new Uint8Array(length);
      this.peek(frame, length);
      this.skip(length);
    }
    return frame;
  }

  /** Forgets everything buffered (a new connection starts clean). */
  reset(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.buffered = 0;
  }

  private peek(out: Uint8Array, length: number): void {
    let chunk = this.head;
    let offset = this.offset;
    let at = 0;
    while (at < length) {
      const c = this.chunks[chunk]!;
      const take = Math.min(length - at, c.length - offset);
      out.set(c.subarray(offset, offset + take), at);
      at += take;
      offset += take;
      if (offset === c.length) {
        chunk++;
        offset = 0;
      }
    }
  }

  private skip(length: number): void {
    this.buffered -= length;
    while (length > 0) {
      const c = this.chunks[this.head]!;
      const take = Math.min(length, c.length - this.offset);
      this.offset += take;
      length -= take;
      if (this.offset === c.length) {
        this.head++;
        this.offset = 0;
      }
    }
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head > 32) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
