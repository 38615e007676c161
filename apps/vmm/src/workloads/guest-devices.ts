import type { GuestMemory } from '@virtio-ts/memory';
import type { GuestAllocator } from '@virtio-ts/device';
import type { IpInterface, NetDriver } from '@virtio-ts/drivers';

/**
 * What a guest workload sees of a virtio-blk disk: the front-end driver (`@virtio-ts/drivers`
 * BlkDriver), which places each request's data in DMA buffers in guest memory. A request larger
 * than the device's limits is split by the driver (VIRTIO 1.3 §5.2.6).
 */
export interface GuestDisk {
  /** Capacity in bytes (config `capacity` × 512). */
  readonly capacity: number;
  /** VIRTIO_BLK_F_RO was offered. */
  readonly readOnly: boolean;
  /** VIRTIO_BLK_T_IN: `length` bytes at disk byte `offset`. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** VIRTIO_BLK_T_OUT: `data` at disk byte `offset`. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** VIRTIO_BLK_T_FLUSH. */
  flush(): Promise<void>;
}

/** What a guest workload sees of a virtio-console port: bytes out (transmitq) and in (receiveq). */
export interface GuestConsole {
  write(data: Uint8Array): Promise<void>;
  /** Resolves with at least one byte and at most `maxLength` bytes from the receive queue. */
  read(maxLength: number): Promise<Uint8Array>;
}

/** What a guest workload sees of a virtio-rng device (§5.4): one request of at most `length` bytes. */
export interface GuestRng {
  /** Entropy: what the device wrote into a `length`-byte buffer (possibly fewer bytes). */
  read(length: number): Promise<Uint8Array>;
}

/**
 * What a guest workload sees of a virtio-net device: the driver and the IPv4 interface on it
 * (ARP, ICMP echo, UDP), with the transmit back-pressure a sender paces itself by.
 */
export interface GuestNet {
  readonly driver: NetDriver;
  readonly stack: IpInterface;
  /** The last frame was refused by a full transmitq (it waits in the stack's backlog). */
  readonly full: boolean;
  /** Resolves when the transmitq has room again (at once when it has). */
  writable(): Promise<void>;
}

/** Everything a workload runs with: the vCPU's view of guest memory and its devices. */
export interface WorkloadContext {
  readonly memory: GuestMemory;
  /** DMA buffers for requests (a range of guest RAM the vCPU owns). */
  readonly allocator: GuestAllocator;
  disk(index: number): GuestDisk;
  console(): GuestConsole;
  rng(): GuestRng;
  /** Net device `index` (among the net devices). */
  net(index: number): GuestNet;
  /** Reports progress in [0, 1]; cheap to call often (the caller throttles). */
  progress(fraction: number): void;
}
