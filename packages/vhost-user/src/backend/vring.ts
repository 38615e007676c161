import type { EventFd } from '@virtio-ts/host';
import type { DeviceQueue } from '@virtio-ts/ring';

/** The vring addresses of SET_VRING_ADDR, in the front-end's virtual address space. */
export interface VringAddresses {
  readonly flags: number;
  readonly desc: bigint;
  readonly used: bigint;
  readonly avail: bigint;
  readonly log: bigint;
}

/**
 * The back-end's view of one vring (QEMU docs/interop/vhost-user.rst "Ring states"): stopped until
 * a kick fd arrives, then started; enabled by SET_VRING_ENABLE (or from the start when
 * VHOST_USER_F_PROTOCOL_FEATURES was not negotiated); stopped again by GET_VRING_BASE.
 */
export class Vring {
  readonly index: number;
  readonly maxSize: number;
  num = 0;
  addresses: VringAddresses | null = null;
  /** SET_VRING_BASE: split — the next avail index; packed — avail/used indices with wrap bits. */
  base = 0;
  kick: EventFd | null = null;
  /** SET_VRING_KICK with the no-fd bit: the back-end polls. */
  polling = false;
  call: EventFd | null = null;
  err: EventFd | null = null;
  enabled = false;
  started = false;
  queue: DeviceQueue | null = null;
  /** Kicks received over the connection's lifetime (for logs and tests). */
  kicks = 0;

  constructor(index: number, maxSize: number) {
    this.index = index;
    this.maxSize = maxSize;
  }

  /** Closes the eventfds and forgets the ring (connection end or RESET_DEVICE). */
  clear(): void {
    for (const fd of [this.kick, this.call, this.err]) fd?.close();
    this.kick = this.call = this.err = null;
    this.num = 0;
    this.addresses = null;
    this.base = 0;
    this.polling = false;
    this.enabled = false;
    this.started = false;
    this.queue = null;
  }
}
