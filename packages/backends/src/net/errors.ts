/**
 * Why a virtio-net frame or control command was dropped or refused. These are *guest* faults
 * (or frames the guest cannot take), counted in {@link NetMetrics}`.faults`; they are never
 * thrown out of the device loop. A dropped transmit chain is still returned to the guest (used
 * length 0); a refused control command is answered VIRTIO_NET_ERR. Host-side errors are
 * `BackendError`s.
 */
export type NetFault =
  /** TX: fewer readable bytes than a virtio_net_hdr (H7: the header in a write-only descriptor). */
  | 'TX_SHORT_HEADER'
  /** TX: a frame shorter than an Ethernet header (14 bytes). */
  | 'TX_RUNT'
  /** TX: a frame longer than the device forwards (MTU + Ethernet and VLAN headers, or 64 KiB with GSO). */
  | 'TX_OVERSIZE'
  /** TX: a gso_type not negotiated, not known, without NEEDS_CSUM, with gso_size 0 or hdr_len past the frame. */
  | 'TX_BAD_GSO'
  /** TX: NEEDS_CSUM with csum_start/csum_offset outside the frame. */
  | 'TX_BAD_CSUM'
  /** TX: a frame on a queue pair that is not in use (beyond VQ_PAIRS_SET), or with the link down. */
  | 'TX_NOT_RUNNING'
  /** RX: a frame the guest's buffers cannot hold without VIRTIO_NET_F_MRG_RXBUF (§5.1.6.3.1). */
  | 'RX_BUFFER_TOO_SMALL'
  /** RX: a buffer with device-readable descriptors or too short for a header; returned with length 0. */
  | 'RX_BAD_BUFFER'
  /** RX: a frame longer than the negotiated MTU allows (§5.1.4.1: MUST NOT pass), or than every buffer together. */
  | 'RX_OVERSIZE'
  /** RX: a frame shorter than an Ethernet header. */
  | 'RX_RUNT'
  /** RX: the back-end asked for an offload the guest has not enabled (GSO), or gave bad checksum offsets. */
  | 'RX_BAD_OFFLOAD'
  /** RX: the link is down (setLinkUp(false)). */
  | 'RX_LINK_DOWN'
  /** CTRL: a command of a class or command not negotiated or not known. */
  | 'CTRL_UNSUPPORTED'
  /** CTRL: a command whose data has the wrong size or value (hostile MAC_TABLE_SET counts included). */
  | 'CTRL_BAD_DATA'
  /** CTRL: a chain without a writable ack byte or without the 2-byte class/command header. */
  | 'CTRL_BAD_CHAIN';

/** Every {@link NetFault}, in a stable order (the metrics JSON lists them in this order). */
export const NET_FAULTS: readonly NetFault[] = [
  'TX_SHORT_HEADER',
  'TX_RUNT',
  'TX_OVERSIZE',
  'TX_BAD_GSO',
  'TX_BAD_CSUM',
  'TX_NOT_RUNNING',
  'RX_BUFFER_TOO_SMALL',
  'RX_BAD_BUFFER',
  'RX_OVERSIZE',
  'RX_RUNT',
  'RX_BAD_OFFLOAD',
  'RX_LINK_DOWN',
  'CTRL_UNSUPPORTED',
  'CTRL_BAD_DATA',
  'CTRL_BAD_CHAIN',
];
