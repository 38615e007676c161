import {
  AF_UNIX, MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_TRUNC, SCM_MAX_FD, SCM_RIGHTS, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET,
} from './constants.js';
import { HostError, syscallError, toError } from './errors.js';
import { closeFd } from './fd.js';
import { errno, koffi, libc, libcAsync } from './libc.js';

const MSGHDR_SIZE = 56;
const IOVEC_SIZE = 16;
const CMSG_HEADER = 16;
const SUN_PATH_MAX = 108;

const align8 = (n: number): number => (n + 7) & ~7;

/** What one `receive` returned: bytes, the file descriptors that came with them, and end of stream. */
export interface ReceivedMessage {
  readonly data: Uint8Array;
  /** Received fds (close-on-exec); the caller owns them and must close them. */
  readonly fds: number[];
  /** True when the peer closed the connection (no data). */
  readonly end: boolean;
}

function sockaddrUn(path: string): Uint8Array {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length === 0 || encoded.length >= SUN_PATH_MAX) throw new HostError('INVALID_ARGUMENT', `socket path must be 1..${SUN_PATH_MAX - 1} bytes`, { path });
  const address = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(encoded, 2);
  return address;
}

/**
 * A connected Unix stream socket that carries file descriptors (SCM_RIGHTS): the transport of
 * vhost-user. Message buffers live in native memory owned by the socket; one receive at a time.
 */
export class UnixSocket {
  readonly fd: number;
  readonly maxBytes: number;
  readonly maxFds: number;
  private closed = false;
  private readonly scratch: unknown;
  private readonly base: bigint;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly controlOffset = MSGHDR_SIZE + IOVEC_SIZE;
  private readonly controlSpace: number;
  private readonly dataOffset: number;
  private receiving = false;

  /** Wraps a connected socket fd (it takes ownership). */
  constructor(fd: number, options: { maxBytes?: number; maxFds?: number } = {}) {
    this.fd = fd;
    this.maxBytes = options.maxBytes ?? 65536;
    this.maxFds = options.maxFds ?? 32;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1 || this.maxBytes > 1 << 24) throw new HostError('INVALID_ARGUMENT', 'maxBytes must be 1..16 MiB');
    if (!Number.isInteger(this.maxFds) || this.maxFds < 0 || this.maxFds > SCM_MAX_FD) throw new HostError('INVALID_ARGUMENT', `maxFds must be 0..${SCM_MAX_FD}`);
    this.controlSpace = CMSG_HEADER + align8(4 * this.maxFds);
    this.dataOffset = this.controlOffset + this.controlSpace;
    const size = this.dataOffset + this.maxBytes;
    this.scratch = koffi.alloc('uint8_t', size);
    this.base = koffi.address(this.scratch);
    const buffer = koffi.view(this.scratch, size);
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  /** connect(2) to a listening Unix socket. */
  static connect(path: string, options?: { maxBytes?: number; maxFds?: number }): UnixSocket {
    const fd = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw syscallError('socket', errno(), { path });
    const address = sockaddrUn(path);
    if (libc().connect(fd, address, address.length) !== 0) {
      const e = errno();
      closeFd(fd);
      throw syscallError('connect', e, { path });
    }
    return new UnixSocket(fd, options);
  }

  /** A connected pair (socketpair(2)). */
  static pair(options?: { maxBytes?: number; maxFds?: number }): [UnixSocket, UnixSocket] {
    const fds = new Int32Array(2);
    if (libc().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) !== 0) throw syscallError('socketpair', errno());
    return [new UnixSocket(fds[0]!, options), new UnixSocket(fds[1]!, options)];
  }

  /** Sends all of `data` with `fds` attached to its first byte. */
  send(data: Uint8Array, fds: readonly number[] = []): void {
    this.check();
    if (data.length === 0 && fds.length === 0) return;
    if (fds.length > SCM_MAX_FD) throw new HostError('INVALID_ARGUMENT', `at most ${SCM_MAX_FD} fds per message`, { fd: this.fd });
    let sent = 0;
    let first = true;
    while (sent < data.length || (first && data.length === 0)) {
      const chunk = Math.min(data.length - sent, this.maxBytes);
      this.bytes.set(data.subarray(sent, sent + chunk), this.dataOffset);
      const withFds = first && fds.length > 0;
      let controlLength = 0;
      if (withFds) {
        controlLength = CMSG_HEADER + align8(4 * fds.length);
        if (controlLength > this.controlSpace) throw new HostError('INVALID_ARGUMENT', `this socket carries at most ${this.maxFds} fds`, { fd: this.fd });
        this.view.setBigUint64(this.controlOffset, BigInt(CMSG_HEADER + 4 * fds.length), true);
        this.view.setInt32(this.controlOffset + 8, SOL_SOCKET, true);
        this.view.setInt32(this.controlOffset + 12, SCM_RIGHTS, true);
        fds.forEach((f, i) => this.view.setInt32(this.controlOffset + CMSG_HEADER + 4 * i, f, true));
      }
      this.writeHeader(chunk, controlLength);
      const n = libc().sendmsg(this.fd, this.scratch, MSG_NOSIGNAL);
      if (n < 0) {
        const e = errno();
        if (e === 4 /* EINTR */) continue;
        throw syscallError('sendmsg', e, { fd: this.fd });
      }
      sent += n;
      first = false;
      if (data.length === 0) break;
    }
  }

  /**
   * Receives up to `maxBytes` (at most the socket's capacity) and any fds. Blocks on a blocking
   * socket. Throws TRUNCATED (closing any fds that did arrive) when the peer sent more fds than fit.
   */
  receive(maxBytes = this.maxBytes): ReceivedMessage {
    this.check();
    this.prepareReceive(maxBytes);
    const n = libc().recvmsg(this.fd, this.scratch, MSG_CMSG_CLOEXEC);
    return this.finishReceive(n, n < 0 ? errno() : 0);
  }

  /**
   * Non-blocking receive (MSG_DONTWAIT): null when nothing is waiting. For edge-triggered epoll
   * loops, call until null.
   */
  tryReceive(maxBytes = this.maxBytes): ReceivedMessage | null {
    this.check();
    this.prepareReceive(maxBytes);
    const n = libc().recvmsg(this.fd, this.scratch, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      const e = errno();
      if (e === 11 /* EAGAIN */) return null;
      return this.finishReceive(n, e);
    }
    return this.finishReceive(n, 0);
  }

  /** Like `receive`, waiting on the thread pool so the event loop keeps running. */
  receiveAsync(maxBytes = this.maxBytes): Promise<ReceivedMessage> {
    this.check();
    if (this.receiving) return Promise.reject(new HostError('INVALID_ARGUMENT', 'one receive at a time', { fd: this.fd }));
    this.receiving = true;
    this.prepareReceive(maxBytes);
    return new Promise((resolve, reject) => {
      libcAsync().recvmsg(this.fd, this.scratch, MSG_CMSG_CLOEXEC, (error, n) => {
        this.receiving = false;
        if (error) return reject(toError(error));
        if (this.closed) return reject(new HostError('CLOSED', 'socket closed during receive', { fd: this.fd }));
        try {
          resolve(this.finishReceive(n, n < 0 ? errno() : 0));
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }

  /** shutdown(SHUT_RDWR): wakes a pending receive with end of stream. */
  shutdown(): void {
    if (!this.closed) libc().shutdown(this.fd, 2);
  }

  /** Closes the socket and frees its buffers. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc().shutdown(this.fd, 2);
    closeFd(this.fd);
    // A receive on the thread pool still uses the scratch buffer: free it only when none is pending.
    if (!this.receiving) koffi.free(this.scratch);
  }

  private prepareReceive(maxBytes: number): void {
    if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > this.maxBytes) {
      throw new HostError('INVALID_ARGUMENT', `maxBytes must be 1..${this.maxBytes}`, { fd: this.fd });
    }
    this.bytes.fill(0, this.controlOffset, this.dataOffset);
    this.writeHeader(maxBytes, this.controlSpace);
  }

  private finishReceive(n: number, e: number): ReceivedMessage {
    if (n < 0) throw syscallError('recvmsg', e, { fd: this.fd });
    const flags = this.view.getInt32(48, true);
    const fds: number[] = [];
    const controlLength = Number(this.view.getBigUint64(40, true));
    let offset = 0;
    // Walk every cmsg (the kernel may deliver one per sender message).
    while (offset + CMSG_HEADER <= controlLength) {
      const at = this.controlOffset + offset;
      const length = Number(this.view.getBigUint64(at, true));
      if (length < CMSG_HEADER) break;
      if (this.view.getInt32(at + 8, true) === SOL_SOCKET && this.view.getInt32(at + 12, true) === SCM_RIGHTS) {
        for (let i = 0; i < (length - CMSG_HEADER) / 4; i++) fds.push(this.view.getInt32(at + CMSG_HEADER + 4 * i, true));
      }
      offset += align8(length);
    }
    if (flags & MSG_CTRUNC || fds.length > this.maxFds) {
      for (const f of fds) closeFd(f);
      throw new HostError('TRUNCATED', `peer sent more file descriptors than the ${this.maxFds} this socket accepts`, { fd: this.fd });
    }
    if (flags & MSG_TRUNC) throw new HostError('TRUNCATED', 'message truncated', { fd: this.fd });
    const data = this.bytes.slice(this.dataOffset, this.dataOffset + n);
    return { data, fds, end: n === 0 && fds.length === 0 };
  }

  private writeHeader(dataLength: number, controlLength: number): void {
    const v = this.view;
    v.setBigUint64(0, 0n, true); // msg_name
    v.setUint32(8, 0, true); // msg_namelen
    v.setBigUint64(16, this.base + BigInt(MSGHDR_SIZE), true); // msg_iov
    v.setBigUint64(24, 1n, true); // msg_iovlen
    v.setBigUint64(32, controlLength > 0 ? this.base + BigInt(this.controlOffset) : 0n, true); // msg_control
    v.setBigUint64(40, BigInt(controlLength), true); // msg_controllen
    v.setInt32(48, 0, true); // msg_flags
    v.setBigUint64(MSGHDR_SIZE, this.base + BigInt(this.dataOffset), true); // iov_base
    v.setBigUint64(MSGHDR_SIZE + 8, BigInt(dataLength), true); // iov_len
  }

  private check(): void {
    if (this.closed) throw new HostError('CLOSED', 'socket is closed', { fd: this.fd });
  }
}

/** A listening Unix stream socket (bind + listen). */
export class UnixListener {
  readonly fd: number;
  readonly path: string;
  private closed = false;

  private constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
  }

  static listen(path: string, backlog = 16, options: { nonBlocking?: boolean } = {}): UnixListener {
    const address = sockaddrUn(path);
    const fd = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (options.nonBlocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) throw syscallError('socket', errno(), { path });
    if (libc().bind(fd, address, address.length) !== 0 || libc().listen(fd, backlog) !== 0) {
      const e = errno();
      closeFd(fd);
      throw syscallError('bind/listen', e, { path });
    }
    return new UnixListener(fd, path);
  }

  /** Waits for a connection on the thread pool. Rejects with CLOSED after `close()`. */
  accept(options?: { maxBytes?: number; maxFds?: number }): Promise<UnixSocket> {
    return new Promise((resolve, reject) => {
      libcAsync().accept4(this.fd, null, null, SOCK_CLOEXEC, (error, fd) => {
        if (error) return reject(toError(error));
        if (fd < 0) {
          const e = errno();
          return reject(this.closed ? new HostError('CLOSED', 'listener closed', { path: this.path }) : syscallError('accept4', e, { path: this.path }));
        }
        if (this.closed) {
          closeFd(fd);
          return reject(new HostError('CLOSED', 'listener closed', { path: this.path }));
        }
        resolve(new UnixSocket(fd, options));
      });
    });
  }

  /**
   * Accepts a pending connection without blocking (the listener must be non-blocking: see
   * `listen(path, backlog, { nonBlocking: true })`); null when none is waiting. For epoll loops.
   */
  tryAccept(options?: { maxBytes?: number; maxFds?: number }): UnixSocket | null {
    if (this.closed) throw new HostError('CLOSED', 'listener closed', { path: this.path });
    const fd = libc().accept4(this.fd, null, null, SOCK_CLOEXEC);
    if (fd < 0) {
      const e = errno();
      if (e === 11 /* EAGAIN */ || e === 4 /* EINTR */) return null;
      throw syscallError('accept4', e, { path: this.path });
    }
    return new UnixSocket(fd, options);
  }

  /** Stops listening (a pending accept fails with CLOSED). Does not unlink the path. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc().shutdown(this.fd, 2);
    closeFd(this.fd);
  }
}
