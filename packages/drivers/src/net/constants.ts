// VIRTIO 1.3 §5.1 (Network Device), driver side. Spec constants live in @virtio-ts/device; the
// driver re-exports the ones it uses.
export {
  VIRTIO_ID_NET,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_S_LINK_UP,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_OK,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX,
} from '@virtio-ts/device';

/** §5.1.4 struct virtio_net_config offsets (the fields this driver reads). */
export const NET_CONFIG_OFFSETS = { mac: 0, status: 6, maxVirtqueuePairs: 8, mtu: 10 } as const;

/** §5.1.4.1: "The device MUST set mtu to between 68 and 65535 inclusive". */
export const NET_MIN_MTU = 68;
export const NET_MAX_MTU = 65535;
/** Ethernet header (14) plus one 802.1Q tag (4): what a receive buffer holds besides the MTU. */
export const ETHERNET_OVERHEAD = 18;
/** §5.1.6.3.1: "buffers of at least 1526 bytes" without MRG_RXBUF nor guest GSO (1514 + the 12-byte header). */
export const MIN_RX_BUFFER = 1526;
/** Page-sized receive buffers with MRG_RXBUF, as Linux uses. */
export const MERGEABLE_RX_BUFFER = 4096;
