/**
 * The BlockDriver contract: what a virtio-blk or virtio-scsi backend, vimg and the benchmarks
 * program against. Formats (raw, qcow2) implement it over a {@link BlockFile}; so do the plain
 * host adapters (memory, file) when used directly as raw disks.
 *
 * Requests may be issued concurrently (a device keeps 32+ in flight); implementations serialise
 * internally where they must. All offsets and lengths are in bytes and must be multiples of
 * `requestAlignment`. Errors are {@link BlockError}s.
 */
export interface BlockDriver {
  /** Contract version, so that the contract can evolve (`'v1'`). */
  readonly specificationVersion: 'v1';
  /** Virtual disk size in bytes. */
  readonly length: number;
  /** Every request offset and length must be a multiple of this (1, 512 or 4096). */
  readonly requestAlignment: number;
  readonly readOnly: boolean;
  /** Fills `buffer` from `offset`. Reads past `length` are INVALID_ARGUMENT. */
  read(offset: number, buffer: Uint8Array): Promise<void>;
  /** Writes `buffer` at `offset`. READ_ONLY on a read-only driver. */
  write(offset: number, buffer: Uint8Array): Promise<void>;
  /** Every write completed before this call is durable when it resolves. */
  flush(): Promise<void>;
  /** Optional: the range's contents become unspecified (they may read as zeroes or as before). */
  discard?(offset: number, length: number): Promise<void>;
  /** Optional: the range reads as zeroes; with `mayUnmap` the space may be deallocated. */
  writeZeroes?(offset: number, length: number, options?: { mayUnmap?: boolean }): Promise<void>;
  /** Optional: grow or shrink the virtual disk. */
  resize?(length: number): Promise<void>;
  /** Optional: allocation status of a range, for `map` and sparse copies. */
  blockStatus?(offset: number, length: number): Promise<BlockStatus>;
  /** What the driver is (format, sizes, options); shapes follow qemu-img's JSON field names. */
  info(): Promise<BlockDriverInfo>;
  /** Flushes when writable and releases the host resources. Later requests throw CLOSED. */
  close(): Promise<void>;
}

/** Allocation status of the range starting at the requested offset (`qemu-img map` semantics). */
export interface BlockStatus {
  /** Bytes from the requested offset that share this status (> 0). */
  readonly length: number;
  /** The range holds data in this image (or a backing image when `depth > 0`). */
  readonly data: boolean;
  /** The range reads as zeroes. */
  readonly zero: boolean;
  /** How many backing images down the data came from (0: this image). */
  readonly depth: number;
  /** Host offset of the data in the file at `depth`, when it is stored uncompressed and known. */
  readonly offset?: number;
  /** True when the range is stored compressed. */
  readonly compressed?: boolean;
  /**
   * Whether the image at `depth` itself holds the range — as data or as zeroes it records (a qcow2
   * zero cluster) — rather than the range reading as zeroes because the chain ends there or a
   * backing file is shorter (QEMU's BDRV_BLOCK_ALLOCATED; `present` in `qemu-img map`).
   * Absent: treat as true (raw images hold every byte).
   */
  readonly allocated?: boolean;
}

/** Driver information, with qemu-img's field names where they exist. */
export interface BlockDriverInfo {
  /** `format` in qemu-img's JSON: 'raw' or 'qcow2'. */
  readonly format: string;
  readonly virtualSize: number;
  /** Bytes the image takes on the host, when known. */
  readonly actualSize?: number;
  readonly clusterSize?: number;
  readonly backingFilename?: string;
  readonly backingFilenameFormat?: string;
  readonly dirty?: boolean;
  /** Format-specific data (qcow2: compat, lazy-refcounts, refcount-bits, extended-l2, corrupt, ...). */
  readonly formatSpecific?: Readonly<Record<string, unknown>>;
}

/**
 * A host byte store that formats read and write: a file, memory, an NBD export. Byte-addressed,
 * any alignment; `length` grows when writing past the end.
 */
export interface BlockFile {
  readonly length: number;
  readonly readOnly: boolean;
  /** Reads `buffer.length` bytes at `offset`; bytes past the end read as zero. */
  read(offset: number, buffer: Uint8Array): Promise<void>;
  write(offset: number, buffer: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  truncate(length: number): Promise<void>;
  /** Optional: deallocate (punch a hole); reads then return zeroes. */
  discard?(offset: number, length: number): Promise<void>;
  /** Optional: the range reads as zeroes and stays allocated (FALLOC_FL_ZERO_RANGE); grows the file. */
  writeZeroes?(offset: number, length: number): Promise<void>;
  /** Optional: reserve host space for the range (fallocate, `preallocation=falloc`); grows the file. */
  allocate?(offset: number, length: number): Promise<void>;
  /** Optional: host allocation map for sparse-aware copies (SEEK_DATA/SEEK_HOLE). */
  isAllocated?(offset: number, length: number): Promise<{ allocated: boolean; length: number }>;
  /** Bytes allocated on the host (st_blocks * 512), when known. */
  allocatedSize?(): Promise<number>;
  close(): Promise<void>;
}
