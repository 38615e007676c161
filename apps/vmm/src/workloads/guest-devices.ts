import type { GuestMemory } from '@virtio-ts/memory';
import type { GuestAllocator } from '@virtio-ts/device';

/**
 * What a guest workload sees of a virtio-blk disk: the front-end driver, with request buffers in
 * guest memory. Every call is one virtio-blk request (VIRTIO 1.3 §5.2.6).
 */
export interface GuestDisk {
  /** Capacity in bytes (config `capacity` × 512). */
  readonly capacity: number;
  /** VIRTIO_BLK_F_RO was offered. */
  readonly readOnly: boolean;
  /** VIRTIO_BLK_T_IN: reads `length` bytes at disk byte `offset` into guest memory at `address`. */
  read(offset: number, address: number, length: number): Promise<void>;
  /** VIRTIO_BLK_T_OUT: writes `length` bytes from guest memory at `address` to disk byte `offset`. */
  write(offset: number, address: number, length: number): Promise<void>;
  /** VIRTIO_BLK_T_FLUSH. */
  flush(): Promise<void>;
}

/** What a guest workload sees of a virtio-console port: bytes out (transmitq) and in (receiveq). */
export interface GuestConsole {
  write(data: Uint8Array): Promise<void>;
  /** Resolves with at least one byte and at most `maxLength` bytes from the receive queue. */
  read(maxLength: number): Promise<Uint8Array>;
}

/** What a guest workload sees of a virtio-rng device. */
export interface GuestRng {
  /** Fills `length` bytes of guest memory at `address` with entropy; resolves with the bytes written. */
  read(address: number, length: number): Promise<number>;
}

/** Everything a workload runs with: the vCPU's view of guest memory and its devices. */
export interface WorkloadContext {
  readonly memory: GuestMemory;
  /** DMA buffers for requests (a range of guest RAM the vCPU owns). */
  readonly allocator: GuestAllocator;
  disk(index: number): GuestDisk;
  console(): GuestConsole;
  rng(): GuestRng;
  /** Reports progress in [0, 1]; cheap to call often (the caller throttles). */
  progress(fraction: number): void;
}
