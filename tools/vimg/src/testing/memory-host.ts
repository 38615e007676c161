import { BlockError, type BlockDriver, type BlockDriverInfo, type BlockStatus } from '@virtio-ts/block';
import type { CheckReport } from '../format/check-result.js';
import type { SnapshotInfo } from '../format/image-info.js';
import { VimgError } from '../errors.js';
import type { CreateRequest, ImageChain, ImageHost, OpenOptions } from '../image/image-host.js';

/**
 * A raw disk in memory that tracks which 4 KiB blocks were written, so that blockStatus reports
 * data and holes. A test double for command logic (compare, convert, map, bench, resize); the
 * real formats are tested through NodeImageHost against qemu-img.
 */
export class MemoryRawDisk implements BlockDriver {
  readonly specificationVersion = 'v1' as const;
  readonly requestAlignment = 1;
  readonly readOnly = false;
  bytes: Uint8Array;
  readonly written = new Set<number>();
  readonly requests: { op: 'read' | 'write' | 'flush'; offset: number; length: number }[] = [];
  static readonly BLOCK = 4096;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  get length(): number {
    return this.bytes.length;
  }

  async read(offset: number, buffer: Uint8Array): Promise<void> {
    this.#check(offset, buffer.length);
    this.requests.push({ op: 'read', offset, length: buffer.length });
    buffer.set(this.bytes.subarray(offset, offset + buffer.length));
  }

  async write(offset: number, buffer: Uint8Array): Promise<void> {
    this.#check(offset, buffer.length);
    this.requests.push({ op: 'write', offset, length: buffer.length });
    this.bytes.set(buffer, offset);
    for (let block = Math.floor(offset / MemoryRawDisk.BLOCK); block * MemoryRawDisk.BLOCK < offset + buffer.length; block += 1) this.written.add(block);
  }

  async flush(): Promise<void> {
    this.requests.push({ op: 'flush', offset: 0, length: 0 });
  }

  async resize(length: number): Promise<void> {
    const next = new Uint8Array(length);
    next.set(this.bytes.subarray(0, Math.min(length, this.bytes.length)));
    this.bytes = next;
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const block = MemoryRawDisk.BLOCK;
    const data = this.written.has(Math.floor(offset / block));
    let end = Math.min(this.length, (Math.floor(offset / block) + 1) * block);
    while (end < offset + length && this.written.has(end / block) === data) end = Math.min(this.length, end + block);
    end = Math.min(end, offset + length);
    return { length: end - offset, data, zero: !data, depth: 0, offset };
  }

  async info(): Promise<BlockDriverInfo> {
    return { format: 'raw', virtualSize: this.length };
  }

  async close(): Promise<void> {}

  #check(offset: number, length: number): void {
    if (offset < 0 || offset + length > this.length) throw new BlockError('INVALID_ARGUMENT', 'request outside the disk', { offset, length });
  }
}

/** An ImageHost whose images are MemoryRawDisks keyed by name. */
export class MemoryHost implements ImageHost {
  readonly disks = new Map<string, MemoryRawDisk>();

  add(name: string, disk: MemoryRawDisk): MemoryRawDisk {
    this.disks.set(name, disk);
    return disk;
  }

  async open(filename: string, _options: OpenOptions): Promise<ImageChain> {
    const disk = this.disks.get(filename);
    if (disk === undefined) throw new VimgError('OPEN_FAILED', `Could not open '${filename}': No such file or directory`, { path: filename });
    return { layers: [{ filename, path: filename, format: 'raw', driver: disk }], top: disk, close: async () => undefined };
  }

  async create(request: CreateRequest): Promise<void> {
    if (request.format !== 'raw') throw new VimgError('UNSUPPORTED', 'memory host creates raw images only');
    this.disks.set(request.path, new MemoryRawDisk(request.size));
  }

  listSnapshots(): Promise<readonly SnapshotInfo[]> {
    return Promise.resolve([]);
  }
  createSnapshot(): Promise<void> {
    return unsupported();
  }
  applySnapshot(): Promise<void> {
    return unsupported();
  }
  deleteSnapshot(): Promise<void> {
    return unsupported();
  }
  check(): Promise<CheckReport> {
    return unsupported();
  }
  async actualSize(path: string): Promise<number | undefined> {
    const disk = this.disks.get(path);
    return disk === undefined ? undefined : disk.written.size * MemoryRawDisk.BLOCK;
  }
}

function unsupported<T>(): Promise<T> {
  return Promise.reject(new VimgError('UNSUPPORTED', 'not supported by the memory host'));
}
