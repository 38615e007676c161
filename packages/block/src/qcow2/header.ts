/**
 * The qcow2 header and header extensions (qcow2 spec, "Header", "Header extensions"): a codec
 * between the first cluster's bytes and {@link Qcow2Header}. Every field is kept, unknown
 * additional header fields and unknown extensions are preserved byte for byte.
 */
import { BlockError } from '../errors.js';
import {
  EXT_BACKING_FORMAT,
  EXT_END,
  EXT_FEATURE_NAME_TABLE,
  MAX_BACKING_FILE_NAME,
  MAX_CLUSTER_BITS,
  MAX_VIRTUAL_SIZE,
  MIN_CLUSTER_BITS,
  QCOW2_MAGIC,
  QCOW2_V2_HEADER_LENGTH,
  QCOW2_V3_MIN_HEADER_LENGTH,
} from './constants.js';

/** One header extension, kept as raw bytes (its order in the file is preserved). */
export interface Qcow2HeaderExtension {
  readonly type: number;
  readonly data: Uint8Array;
}

/** An entry of the feature name table extension. */
export interface Qcow2FeatureName {
  /** 0 incompatible, 1 compatible, 2 autoclear. */
  readonly type: number;
  readonly bit: number;
  readonly name: string;
}

/** The parsed header. Field names follow the spec (camelCase). Feature masks are 64-bit bigints. */
export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  /** Byte 104 (v3 with header_length > 104), else 0 (deflate). */
  compressionType: number;
  /** Bytes 105..header_length (padding and unknown additional fields), preserved verbatim. */
  additionalFields: Uint8Array;
  /** Every extension except the end marker, in file order (backing format included). */
  extensions: Qcow2HeaderExtension[];
  /** The backing file name, or undefined when there is none. */
  backingFile: string | undefined;
}

const textDecoder = new TextDecoder('utf-8', { fatal: false });
const textEncoder = new TextEncoder();

function u64(view: DataView, offset: number, field: string): number {
  const value = view.getBigUint64(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BlockError('INVALID_FORMAT', `qcow2 header field ${field} is too large (${value})`, { offset });
  }
  return Number(value);
}

/** Reads the cluster size from the first bytes (at least 24) without validating the rest. */
export function peekClusterBits(bytes: Uint8Array): number {
  if (bytes.length < QCOW2_V2_HEADER_LENGTH) {
    throw new BlockError('INVALID_FORMAT', 'file too short for a qcow2 header');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== QCOW2_MAGIC) throw new BlockError('INVALID_FORMAT', 'not a qcow2 image (bad magic)');
  const clusterBits = view.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new BlockError(
      'INVALID_FORMAT',
      `qcow2 cluster_bits ${clusterBits} outside ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS} (512 B to 2 MiB clusters)`,
    );
  }
  return clusterBits;
}

/**
 * Parses the header cluster. `bytes` is the whole first cluster (zero-padded when the file is
 * shorter). Checks only what the header itself can prove; the open path validates offsets
 * against the file.
 */
export function parseQcow2Header(bytes: Uint8Array): Qcow2Header {
  const clusterBits = peekClusterBits(bytes);
  const clusterSize = 2 ** clusterBits;
  if (bytes.length < clusterSize) throw new BlockError('INVALID_FORMAT', 'header cluster truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset, clusterSize);
  const version = view.getUint32(4);
  if (version !== 2 && version !== 3) {
    throw new BlockError('UNSUPPORTED', `qcow2 version ${version} is not supported (only 2 and 3)`);
  }
  const header: Qcow2Header = {
    version,
    backingFileOffset: u64(view, 8, 'backing_file_offset'),
    backingFileSize: view.getUint32(16),
    clusterBits,
    size: u64(view, 24, 'size'),
    cryptMethod: view.getUint32(32),
    l1Size: view.getUint32(36),
    l1TableOffset: u64(view, 40, 'l1_table_offset'),
    refcountTableOffset: u64(view, 48, 'refcount_table_offset'),
    refcountTableClusters: view.getUint32(56),
    nbSnapshots: view.getUint32(60),
    snapshotsOffset: u64(view, 64, 'snapshots_offset'),
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: QCOW2_V2_HEADER_LENGTH,
    compressionType: 0,
    additionalFields: new Uint8Array(0),
    extensions: [],
    backingFile: undefined,
  };
  if (header.size > MAX_VIRTUAL_SIZE) {
    throw new BlockError('UNSUPPORTED', `qcow2 virtual size ${header.size} is above 2^53`);
  }
  if (version === 3) {
    header.incompatibleFeatures = view.getBigUint64(72);
    header.compatibleFeatures = view.getBigUint64(80);
    header.autoclearFeatures = view.getBigUint64(88);
    header.refcountOrder = view.getUint32(96);
    header.headerLength = view.getUint32(100);
    // qcow2 spec: "For version 3 it's at least 104 bytes and must be a multiple of 8"; QEMU also
    // requires it to fit in the first cluster.
    if (header.headerLength < QCOW2_V3_MIN_HEADER_LENGTH || header.headerLength > clusterSize) {
      throw new BlockError('INVALID_FORMAT', `qcow2 header_length ${header.headerLength} invalid`);
    }
    if (header.headerLength > 104) header.compressionType = view.getUint8(104);
    if (header.headerLength > 105) header.additionalFields = bytes.slice(105, header.headerLength);
    if (header.refcountOrder > 6) {
      throw new BlockError('INVALID_FORMAT', `qcow2 refcount_order ${header.refcountOrder} exceeds 6`);
    }
  }

  // Backing file name: at most 1023 bytes, inside the first cluster.
  if (header.backingFileOffset !== 0) {
    if (header.backingFileSize > MAX_BACKING_FILE_NAME) {
      throw new BlockError('INVALID_FORMAT', `qcow2 backing file name too long (${header.backingFileSize} bytes)`);
    }
    if (header.backingFileOffset + header.backingFileSize > clusterSize || header.backingFileOffset < header.headerLength) {
      throw new BlockError('INVALID_FORMAT', 'qcow2 backing file name outside the header cluster');
    }
    header.backingFile = textDecoder.decode(
      bytes.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize),
    );
  }

  // Header extensions: from header_length to the backing name (or the end of the cluster).
  const extEnd = header.backingFileOffset !== 0 ? header.backingFileOffset : clusterSize;
  let pos = header.headerLength;
  for (;;) {
    if (pos + 8 > extEnd) {
      // QEMU stops silently when the area ends without an end marker only for v2 padding;
      // a truncated extension header is an error.
      if (pos === extEnd || version === 2) break;
      throw new BlockError('INVALID_FORMAT', 'qcow2 header extension area truncated', { offset: pos });
    }
    const type = view.getUint32(pos);
    const length = view.getUint32(pos + 4);
    if (type === EXT_END) break;
    const dataStart = pos + 8;
    if (length > extEnd - dataStart) {
      throw new BlockError('INVALID_FORMAT', `qcow2 header extension 0x${type.toString(16)} overruns the header`, {
        offset: pos,
      });
    }
    header.extensions.push({ type, data: bytes.slice(dataStart, dataStart + length) });
    pos = dataStart + roundUp8(length);
    if (header.extensions.length > 4096) throw new BlockError('INVALID_FORMAT', 'too many qcow2 header extensions');
  }
  return header;
}

function roundUp8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** The backing format extension's string, if any. */
export function backingFormatOf(header: Qcow2Header): string | undefined {
  const ext = header.extensions.find((e) => e.type === EXT_BACKING_FORMAT);
  return ext === undefined ? undefined : textDecoder.decode(ext.data);
}

/** Sets (or removes, with undefined) the backing format extension, keeping the others' order. */
export function setBackingFormat(header: Qcow2Header, format: string | undefined): void {
  const index = header.extensions.findIndex((e) => e.type === EXT_BACKING_FORMAT);
  if (format === undefined) {
    if (index >= 0) header.extensions.splice(index, 1);
    return;
  }
  const ext = { type: EXT_BACKING_FORMAT, data: textEncoder.encode(format) };
  if (index >= 0) header.extensions[index] = ext;
  else header.extensions.unshift(ext);
}

/** Decodes the feature name table extension (empty when absent). */
export function featureNamesOf(header: Qcow2Header): Qcow2FeatureName[] {
  const ext = header.extensions.find((e) => e.type === EXT_FEATURE_NAME_TABLE);
  if (ext === undefined) return [];
  const names: Qcow2FeatureName[] = [];
  for (let pos = 0; pos + 48 <= ext.data.length; pos += 48) {
    const raw = ext.data.subarray(pos + 2, pos + 48);
    const nul = raw.indexOf(0);
    names.push({ type: ext.data[pos]!, bit: ext.data[pos + 1]!, name: textDecoder.decode(nul >= 0 ? raw.subarray(0, nul) : raw) });
  }
  return names;
}

/** Encodes a feature name table extension. */
export function encodeFeatureNameTable(names: readonly Qcow2FeatureName[]): Qcow2HeaderExtension {
  const data = new Uint8Array(names.length * 48);
  names.forEach((entry, i) => {
    data[i * 48] = entry.type;
    data[i * 48 + 1] = entry.bit;
    data.set(textEncoder.encode(entry.name).subarray(0, 46), i * 48 + 2);
  });
  return { type: EXT_FEATURE_NAME_TABLE, data };
}

/**
 * Serialises the header into a buffer of exactly one cluster: fixed fields, additional fields,
 * extensions (with 8-byte padding), the end marker, then the backing file name. Updates
 * `backingFileOffset`/`backingFileSize` in `header` to where the name was placed. Throws
 * INVALID_ARGUMENT when everything does not fit in the first cluster.
 */
export function serializeQcow2Header(header: Qcow2Header): Uint8Array {
  const clusterSize = 2 ** header.clusterBits;
  const bytes = new Uint8Array(clusterSize);
  const view = new DataView(bytes.buffer);
  const headerLength = header.version === 2 ? QCOW2_V2_HEADER_LENGTH : header.headerLength;
  const backingName = header.backingFile === undefined ? undefined : textEncoder.encode(header.backingFile);
  if (backingName !== undefined && backingName.length > MAX_BACKING_FILE_NAME) {
    throw new BlockError('INVALID_ARGUMENT', `backing file name longer than ${MAX_BACKING_FILE_NAME} bytes`);
  }
  let pos = headerLength;
  for (const ext of header.extensions) pos += 8 + roundUp8(ext.data.length);
  pos += 8; // end marker
  const needed = pos + (backingName?.length ?? 0);
  if (needed > clusterSize) {
    throw new BlockError('INVALID_ARGUMENT', `qcow2 header (${needed} bytes) does not fit in a ${clusterSize}-byte cluster`);
  }
  if (backingName !== undefined) {
    header.backingFileOffset = pos;
    header.backingFileSize = backingName.length;
    bytes.set(backingName, pos);
  } else {
    header.backingFileOffset = 0;
    header.backingFileSize = 0;
  }
  writeFixedFields(view, header);
  if (header.version === 3) {
    if (headerLength > 104) bytes[104] = header.compressionType;
    bytes.set(header.additionalFields.subarray(0, Math.max(0, headerLength - 105)), 105);
  }
  pos = headerLength;
  for (const ext of header.extensions) {
    view.setUint32(pos, ext.type);
    view.setUint32(pos + 4, ext.data.length);
    bytes.set(ext.data, pos + 8);
    pos += 8 + roundUp8(ext.data.length);
  }
  // end marker: already zero
  return bytes;
}

/** Writes bytes 0..103 (v3) or 0..71 (v2) of the header into `view`. */
export function writeFixedFields(view: DataView, header: Qcow2Header): void {
  view.setUint32(0, QCOW2_MAGIC);
  view.setUint32(4, header.version);
  view.setBigUint64(8, BigInt(header.backingFileOffset));
  view.setUint32(16, header.backingFileSize);
  view.setUint32(20, header.clusterBits);
  view.setBigUint64(24, BigInt(header.size));
  view.setUint32(32, header.cryptMethod);
  view.setUint32(36, header.l1Size);
  view.setBigUint64(40, BigInt(header.l1TableOffset));
  view.setBigUint64(48, BigInt(header.refcountTableOffset));
  view.setUint32(56, header.refcountTableClusters);
  view.setUint32(60, header.nbSnapshots);
  view.setBigUint64(64, BigInt(header.snapshotsOffset));
  if (header.version === 3) {
    view.setBigUint64(72, header.incompatibleFeatures);
    view.setBigUint64(80, header.compatibleFeatures);
    view.setBigUint64(88, header.autoclearFeatures);
    view.setUint32(96, header.refcountOrder);
    view.setUint32(100, header.headerLength);
  }
}

/** A deep copy of a header. */
export function cloneHeader(header: Qcow2Header): Qcow2Header {
  return {
    ...header,
    additionalFields: header.additionalFields.slice(),
    extensions: header.extensions.map((e) => ({ type: e.type, data: e.data.slice() })),
  };
}
