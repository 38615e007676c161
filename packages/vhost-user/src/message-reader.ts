import { HEADER_SIZE, MAX_FDS_PER_MESSAGE, MAX_PAYLOAD_SIZE } from './constants.js';
import { VhostUserError } from './errors.js';

/** One framed message: header bytes, payload bytes, and the fds that arrived with it. */
export interface FramedMessage {
  readonly header: Uint8Array;
  readonly payload: Uint8Array;
  readonly fds: number[];
}

/**
 * Frames a vhost-user byte stream into messages. File descriptors arrive with the first byte of
 * the sendmsg that carried them, so each fd belongs to the message containing the byte position
 * at which it arrived. Bounded: a header announcing more than MAX_PAYLOAD_SIZE bytes is an error
 * before anything is buffered for it.
 */
export class MessageReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Stream position of the first buffered byte. */
  private position = 0;
  private fds: { position: number; fd: number }[] = [];

  /** Adds bytes received from the socket and the fds that came with them. */
  push(data: Uint8Array, fds: readonly number[] = []): void {
    const at = this.position + this.buffered;
    for (const fd of fds) this.fds.push({ position: at, fd });
    if (this.fds.length > MAX_FDS_PER_MESSAGE * 4) throw new VhostUserError('BAD_FDS', `${this.fds.length} file descriptors pending without a message`);
    if (data.length > 0) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
  }

  /** The next complete message, or null when more bytes are needed. */
  next(): FramedMessage | null {
    if (this.buffered < HEADER_SIZE) return null;
    const head = this.peek(HEADER_SIZE);
    const size = new DataView(head.buffer, head.byteOffset, HEADER_SIZE).getUint32(8, true);
    if (size > MAX_PAYLOAD_SIZE) throw new VhostUserError('BAD_SIZE', `header announces ${size} payload bytes (max ${MAX_PAYLOAD_SIZE})`, { size });
    if (this.buffered < HEADER_SIZE + size) return null;
    const all = this.take(HEADER_SIZE + size);
    const end = this.position;
    const start = end - (HEADER_SIZE + size);
    const mine: number[] = [];
    const rest: { position: number; fd: number }[] = [];
    for (const entry of this.fds) {
      if (entry.position < end && entry.position >= start) mine.push(entry.fd);
      else if (entry.position < start) mine.push(entry.fd); // fds with no bytes of their own join the next message
      else rest.push(entry);
    }
    this.fds = rest;
    return { header: all.subarray(0, HEADER_SIZE), payload: all.subarray(HEADER_SIZE), fds: mine };
  }

  /** Fds received and not yet handed out (to close when the connection ends). */
  drainFds(): number[] {
    const fds = this.fds.map((e) => e.fd);
    this.fds = [];
    return fds;
  }

  /**
   * How many bytes complete the current header or payload. Receive at most this many at a time:
   * a stream recvmsg may otherwise return the tail of one message and the head of the next, with
   * the next one's fds, and nothing says where they began.
   */
  bytesWanted(): number {
    if (this.buffered < HEADER_SIZE) return HEADER_SIZE - this.buffered;
    const head = this.peek(HEADER_SIZE);
    const size = new DataView(head.buffer, head.byteOffset, HEADER_SIZE).getUint32(8, true);
    if (size > MAX_PAYLOAD_SIZE) return 1; // next() reports BAD_SIZE
    return Math.max(1, HEADER_SIZE + size - this.buffered);
  }

  /** Bytes buffered that do not yet form a message. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let filled = 0;
    for (const chunk of this.chunks) {
      const take = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      if (filled === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const take = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(take);
    }
    this.buffered -= n;
    this.position += n;
    return out;
  }
}
