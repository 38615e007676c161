import {
  IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, O_CLOEXEC, O_NONBLOCK, O_RDWR, TUNGETFEATURES, TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ,
} from './constants.js';
import { HostError, syscallError } from './errors.js';
import { closeFd, readFd, writeFd } from './fd.js';
import { errno, libc } from './libc.js';

const IFNAMSIZ = 16;
/** <linux/if_tun.h>: TUNSETQUEUE = _IOW('T', 217, int) and its ifreq flags. */
const TUNSETQUEUE = 0x400454d9;
const IFF_ATTACH_QUEUE = 0x0200;
const IFF_DETACH_QUEUE = 0x0400;

export interface TapOptions {
  /** Interface name (≤ 15 bytes); the kernel picks `tapN` when omitted. */
  readonly name?: string;
  /** Prepend a virtio_net_hdr to every frame (IFF_VNET_HDR), default true. */
  readonly vnetHeader?: boolean;
  /** virtio_net_hdr size: 10 (legacy), 12 (VERSION_1 / MRG_RXBUF). Default 12. */
  readonly vnetHeaderSize?: 10 | 12;
  /** One queue of a multiqueue TAP (IFF_MULTI_QUEUE). */
  readonly multiQueue?: boolean;
}

/**
 * A TAP device queue (open /dev/net/tun + TUNSETIFF). Non-blocking: `read` returns 0 when no frame
 * is waiting (poll the fd with epoll). Needs CAP_NET_ADMIN; create it inside a network namespace
 * for tests.
 */
export class Tap {
  readonly fd: number;
  readonly name: string;
  readonly vnetHeaderSize: number;
  private closed = false;

  private constructor(fd: number, name: string, vnetHeaderSize: number) {
    this.fd = fd;
    this.name = name;
    this.vnetHeaderSize = vnetHeaderSize;
  }

  static open(options: TapOptions = {}): Tap {
    const name = options.name ?? '';
    if (new TextEncoder().encode(name).length >= IFNAMSIZ) throw new HostError('INVALID_ARGUMENT', `TAP name must be < ${IFNAMSIZ} bytes`, { path: name });
    const vnet = options.vnetHeader ?? true;
    const headerSize = vnet ? (options.vnetHeaderSize ?? 12) : 0;
    const fd = libc().open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) throw syscallError('open', errno(), { path: '/dev/net/tun' });
    try {
      const ifreq = new Uint8Array(40);
      ifreq.set(new TextEncoder().encode(name), 0);
      const flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (options.multiQueue ? IFF_MULTI_QUEUE : 0);
      new DataView(ifreq.buffer).setUint16(IFNAMSIZ, flags, true);
      if (libc().ioctl(fd, TUNSETIFF, 'uint8_t *', ifreq) !== 0) throw syscallError('ioctl(TUNSETIFF)', errno(), { fd, path: name });
      const end = ifreq.indexOf(0);
      const actual = new TextDecoder().decode(ifreq.subarray(0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end));
      if (vnet) {
        const size = new Int32Array([headerSize]);
        if (libc().ioctl(fd, TUNSETVNETHDRSZ, 'int32_t *', size) !== 0) throw syscallError('ioctl(TUNSETVNETHDRSZ)', errno(), { fd, path: actual });
      }
      return new Tap(fd, actual, headerSize);
    } catch (error) {
      closeFd(fd);
      throw error;
    }
  }

  /** The TUN_F_* offloads the kernel may hand us (TUNSETOFFLOAD): checksum, TSO4/6, UFO. */
  setOffload(flags: number): void {
    this.check();
    if (libc().ioctl(this.fd, TUNSETOFFLOAD, 'unsigned long', flags) !== 0) throw syscallError('ioctl(TUNSETOFFLOAD)', errno(), { fd: this.fd, path: this.name });
  }

  /**
   * Attaches (true) or detaches (false) this queue of a multiqueue TAP (TUNSETQUEUE): the kernel
   * steers frames only to attached queues, so a queue nobody reads should be detached. A
   * detached queue's fd stays open; writing to it fails with EBADFD.
   */
  setQueueEnabled(enabled: boolean): void {
    this.check();
    const ifreq = new Uint8Array(40);
    new DataView(ifreq.buffer).setUint16(IFNAMSIZ, enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE, true);
    if (libc().ioctl(this.fd, TUNSETQUEUE, 'uint8_t *', ifreq) !== 0) throw syscallError('ioctl(TUNSETQUEUE)', errno(), { fd: this.fd, path: this.name });
  }

  /** The IFF_* features this kernel's tun driver supports. */
  features(): number {
    this.check();
    const out = new Uint32Array(1);
    if (libc().ioctl(this.fd, TUNGETFEATURES, 'uint32_t *', out) !== 0) throw syscallError('ioctl(TUNGETFEATURES)', errno(), { fd: this.fd });
    return out[0]!;
  }

  /** Reads one frame (with its vnet header) into `buffer`; 0 when none is waiting. */
  read(buffer: Uint8Array): number {
    this.check();
    try {
      return readFd(this.fd, buffer);
    } catch (error) {
      if (HostError.isInstance(error) && error.code === 'EAGAIN') return 0;
      throw error;
    }
  }

  /** Writes one frame (with its vnet header). */
  write(frame: Uint8Array): number {
    this.check();
    return writeFd(this.fd, frame);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }

  private check(): void {
    if (this.closed) throw new HostError('CLOSED', 'TAP is closed', { fd: this.fd, path: this.name });
  }
}
