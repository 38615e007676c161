// VIRTIO 1.3 §5.1.6 "Device Operation": struct virtio_net_hdr, shared by the net device, the net
// driver and host back-ends (a TAP with IFF_VNET_HDR uses the same layout, little-endian).

/** §5.1.6: flags. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_F_RSC_INFO = 4;
/** §5.1.6: gso_type values (ECN is a flag bit on top of them). */
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/**
 * Size of the header a modern device and driver exchange: 12 bytes. With VIRTIO_F_VERSION_1 the
 * `num_buffers` field is always present (§5.1.6.1); 20 bytes only with VIRTIO_NET_F_HASH_REPORT,
 * which this implementation does not offer.
 */
export const VIRTIO_NET_HDR_SIZE = 12;
/** The legacy 10-byte header without num_buffers (a TAP's default vnet header size). */
export const VIRTIO_NET_HDR_LEGACY_SIZE = 10;

/** §5.1.6 struct virtio_net_hdr, decoded. */
export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** Number of descriptor chains a merged receive buffer spans (§5.1.6.3.2); 1 otherwise. */
  numBuffers: number;
}

/** A header that asks for nothing: no checksum offload, no segmentation, one buffer. */
export function plainNetHdr(): VirtioNetHdr {
  return { flags: 0, gsoType: VIRTIO_NET_HDR_GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 1 };
}

/**
 * Decodes a header from the first 10 (legacy) or 12 bytes of `bytes`. Values are returned as
 * read: validating them against the negotiated features is the caller's job (§5.1.6.2.1).
 * Throws RangeError when `bytes` is shorter than `size`.
 */
export function decodeNetHdr(bytes: Uint8Array, size: number = VIRTIO_NET_HDR_SIZE): VirtioNetHdr {
  if (size !== VIRTIO_NET_HDR_SIZE && size !== VIRTIO_NET_HDR_LEGACY_SIZE) throw new RangeError(`virtio_net_hdr size ${size}`);
  if (bytes.length < size) throw new RangeError(`virtio_net_hdr needs ${size} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, size);
  return {
    flags: v.getUint8(0),
    gsoType: v.getUint8(1),
    hdrLen: v.getUint16(2, true),
    gsoSize: v.getUint16(4, true),
    csumStart: v.getUint16(6, true),
    csumOffset: v.getUint16(8, true),
    numBuffers: size === VIRTIO_NET_HDR_SIZE ? v.getUint16(10, true) : 1,
  };
}

/** Encodes `hdr` into the first 10 or 12 bytes of `out` (fields are masked to their widths). */
export function encodeNetHdr(hdr: VirtioNetHdr, out: Uint8Array, size: number = VIRTIO_NET_HDR_SIZE): void {
  if (size !== VIRTIO_NET_HDR_SIZE && size !== VIRTIO_NET_HDR_LEGACY_SIZE) throw new RangeError(`virtio_net_hdr size ${size}`);
  if (out.length < size) throw new RangeError(`virtio_net_hdr needs ${size} bytes, got ${out.length}`);
  const v = new DataView(out.buffer, out.byteOffset, size);
  v.setUint8(0, hdr.flags & 0xff);
  v.setUint8(1, hdr.gsoType & 0xff);
  v.setUint16(2, hdr.hdrLen & 0xffff, true);
  v.setUint16(4, hdr.gsoSize & 0xffff, true);
  v.setUint16(6, hdr.csumStart & 0xffff, true);
  v.setUint16(8, hdr.csumOffset & 0xffff, true);
  if (size === VIRTIO_NET_HDR_SIZE) v.setUint16(10, hdr.numBuffers & 0xffff, true);
}

// §5.1.4 struct virtio_net_config: VIRTIO_NET_CONFIG / VIRTIO_NET_CONFIG_SIZE in constants.ts.

/** §5.1.6.5: control virtqueue classes, commands and acks. */
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;
export const VIRTIO_NET_CTRL_RX = 0;
export const VIRTIO_NET_CTRL_RX_PROMISC = 0;
export const VIRTIO_NET_CTRL_RX_ALLMULTI = 1;
export const VIRTIO_NET_CTRL_RX_ALLUNI = 2;
export const VIRTIO_NET_CTRL_RX_NOMULTI = 3;
export const VIRTIO_NET_CTRL_RX_NOUNI = 4;
export const VIRTIO_NET_CTRL_RX_NOBCAST = 5;
export const VIRTIO_NET_CTRL_MAC = 1;
export const VIRTIO_NET_CTRL_MAC_TABLE_SET = 0;
export const VIRTIO_NET_CTRL_MAC_ADDR_SET = 1;
export const VIRTIO_NET_CTRL_VLAN = 2;
export const VIRTIO_NET_CTRL_VLAN_ADD = 0;
export const VIRTIO_NET_CTRL_VLAN_DEL = 1;
export const VIRTIO_NET_CTRL_ANNOUNCE = 3;
export const VIRTIO_NET_CTRL_ANNOUNCE_ACK = 0;
export const VIRTIO_NET_CTRL_MQ = 4;
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET = 0;
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN = 1;
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX = 0x8000;
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS = 5;
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET = 0;
