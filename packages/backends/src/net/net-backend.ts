// The host side of a virtio-net device: where transmitted frames go and received frames come
// from. Implemented by the in-process L2 switch (pure), a TAP device and a `-netdev stream`
// socket (`@virtio-ts/backends/node`). One contract so the device never knows which it has.

import type { VirtioNetHdr } from '@virtio-ts/device';

/**
 * Offloads a host back-end can honour (§5.1.3 feature bits depend on them). A device offers
 * VIRTIO_NET_F_CSUM / HOST_TSO4 / HOST_TSO6 / HOST_UFO / HOST_ECN only when the back-end accepts
 * frames with such a header (`tx*`), and GUEST_CSUM / GUEST_TSO4 / ... only when it can produce
 * them (`rx*`); otherwise every frame crossing the back-end is a complete, checksummed frame.
 */
export interface NetOffloads {
  /** Back-end takes frames with VIRTIO_NET_HDR_F_NEEDS_CSUM (partial checksum). */
  readonly csum: boolean;
  /** Back-end takes GSO TCPv4 / TCPv6 / UDP (UFO) / ECN super-frames up to 64 KiB. */
  readonly tso4: boolean;
  readonly tso6: boolean;
  readonly ufo: boolean;
  readonly ecn: boolean;
}

/** No offloads at all: frames are whole and checksummed both ways. */
export const NO_NET_OFFLOADS: NetOffloads = Object.freeze({ csum: false, tso4: false, tso6: false, ufo: false, ecn: false });

/**
 * Receives frames from a back-end. The device implements it for each queue pair it attaches.
 */
export interface NetReceiver {
  /**
   * One frame for the guest. `frame` is only valid during the call (copy it out). `hdr` is
   * present when the back-end carries a virtio_net_hdr (offloads); otherwise the frame is
   * complete and checksummed.
   *
   * Return false when the guest has no receive buffers: the back-end keeps this frame (or drops
   * it, counting the drop, if it cannot keep it) and delivers nothing more to this receiver until
   * {@link NetPort.resumeReceive} is called.
   */
  receive(frame: Uint8Array, hdr?: VirtioNetHdr): boolean;
  /** Optional: the back-end delivered a batch and is about to wait; a device signals the guest once here. */
  receiveBatchEnd?(): void;
  /** The back-end can take transmissions again after {@link NetPort.send} returned false. */
  writable(): void;
}

/** One queue pair's channel to a back-end. */
export interface NetPort {
  /**
   * Transmits one frame (already without the virtio_net_hdr). `hdr` is given when the guest's
   * header asks for an offload the back-end declared in {@link NetBackend.offloads}.
   * Returns false when the back-end is full: the frame was NOT taken, and the caller retries it
   * after {@link NetReceiver.writable}.
   *
   * `frame`, its views and `hdr` are only valid during the call: the views alias guest memory
   * (zero-copy) that the guest reuses once the device returns its buffer, and the device reuses
   * the array and the header object. A back-end that queues a frame copies it.
   */
  send(frame: readonly Uint8Array[], hdr?: VirtioNetHdr): boolean;
  /** Starts (or replaces) delivery of received frames. */
  attach(receiver: NetReceiver): void;
  /** Stops delivery; frames arriving meanwhile are dropped and counted (a NIC with its link down). */
  detach(): void;
  /** The receiver has buffers again after it returned false. */
  resumeReceive(): void;
}

/** Counters every back-end keeps (like `ip -s link`). */
export interface NetBackendStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames dropped because no receiver was attached or it could not keep them. */
  rxDropped: number;
  /** Frames refused or dropped on the way out (back-end closed, oversize). */
  txDropped: number;
}

/**
 * A host network back-end: one or more queue-pair ports (a multiqueue TAP opens one fd per pair;
 * the switch and a stream socket have one), the offloads it honours and its MTU.
 */
export interface NetBackend {
  /** Human-readable kind and name, for logs (`tap:tap0`, `switch:lan0/3`, `stream:/run/n.sock`). */
  readonly description: string;
  /** Queue pairs this back-end can serve (≥ 1); the device offers VIRTIO_NET_F_MQ only when > 1. */
  readonly maxQueuePairs: number;
  readonly offloads: NetOffloads;
  /**
   * Optional: the offloads it can deliver in received frames (what the device may offer as
   * VIRTIO_NET_F_GUEST_*). Default: {@link offloads}, the same both ways.
   */
  readonly rxOffloads?: NetOffloads;
  /** Largest frame (without Ethernet header and FCS) it carries; the device's MTU field. */
  readonly mtu: number;
  /** The port of queue pair `index` (0 ≤ index < maxQueuePairs). */
  port(index: number): NetPort;
  /**
   * Tells the back-end which offloads the guest accepted for received frames (GUEST_CSUM /
   * GUEST_TSO4 / ...; a TAP's TUNSETOFFLOAD). Frames it delivers after this never need more.
   */
  setGuestOffloads(offloads: NetOffloads): void;
  readonly stats: NetBackendStats;
  /** Releases fds and sockets; ports stop delivering. Idempotent. */
  close(): Promise<void>;
}
