/** qcow2 compression types: header `compression_type` 0 (deflate) and 1 (zstd). */
export type CompressionType = 'deflate' | 'zstd';

/**
 * A compressed-cluster codec. Pure implementations (pako, zstd-wasm) run everywhere; Node
 * implementations (node:zlib) live under `src/node/`.
 */
export interface Qcow2Codec {
  readonly type: CompressionType;
  /**
   * Compresses one cluster. Returns null when the result would not be smaller than the cluster
   * (qcow2 then stores it uncompressed).
   */
  compress(cluster: Uint8Array): Uint8Array | null;
  /**
   * Decompresses the bytes stored for one compressed cluster (possibly followed by padding) into
   * exactly `clusterSize` bytes. Throws BlockError CORRUPT_IMAGE on a bad stream, a stream that
   * inflates past the cluster (a bomb) or one that ends short.
   */
  decompress(input: Uint8Array, clusterSize: number): Uint8Array;
}
