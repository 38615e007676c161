// RFC 1071 "Computing the Internet Checksum" and the IPv4 pseudo-header sum of RFC 768/793: one
// implementation shared with the device side (VIRTIO 1.3 §5.1.6.2 checksum completion), in
// @virtio-ts/device.
export { internetChecksum, onesComplementSum, pseudoHeaderSum } from '@virtio-ts/device';
