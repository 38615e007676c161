import { stat } from 'node:fs/promises';
import {
  amendQcow2,
  applySnapshot,
  BlockError,
  checkQcow2,
  createNodeDeflateCodec,
  createQcow2,
  createRaw,
  createSnapshot,
  createZstdCodec,
  deleteSnapshot,
  listSnapshots,
  makeEmptyQcow2,
  NodeFile,
  Qcow2Driver,
  RawDriver,
  setQcow2Backing,
  type BlockDriver,
  type BlockFile,
  type Qcow2Codec,
} from './block-imports.js';
import { parseOnOff } from '../cli/option-list.js';
import { VimgError } from '../errors.js';
import type { CheckReport } from '../format/check-result.js';
import type { SnapshotInfo } from '../format/image-info.js';
import { BackingPolicy, pathCombine, realOrResolved } from './backing-policy.js';
import type { CreateRequest, ImageChain, ImageHost, ImageLayer, OpenOptions } from './image-host.js';

/** qcow2's magic, "QFI\xfb" (qcow2 spec, Header). */
const QCOW2_MAGIC = [0x51, 0x46, 0x49, 0xfb];

/**
 * The ImageHost over @virtio-ts/block's Node adapters: NodeFile, RawDriver, Qcow2Driver. It owns
 * format probing (top image only), the backing-file policy and the mapping of block's structures
 * to qemu-img's.
 */
export class NodeImageHost implements ImageHost {
  #codecs: Promise<{ deflate: Qcow2Codec; zstd: Qcow2Codec }> | undefined;

  async open(filename: string, options: OpenOptions): Promise<ImageChain> {
    const policy = new BackingPolicy(filename, options.allowBacking ?? []);
    const layers: ImageLayer[] = [];
    const opened: BlockDriver[] = [];
    try {
      const format = options.format ?? (await probeFormat(filename));
      const top = await this.#openLayer(filename, realOrResolved(filename), format, !options.writable, options.backing !== false, 0, layers, opened, policy, options);
      return {
        layers,
        top,
        close: async () => {
          // Closing a qcow2 driver closes its backing driver too.
          await top.close();
        },
      };
    } catch (error) {
      for (const driver of opened.reverse()) await driver.close().catch(() => undefined);
      throw wrapOpenError(error, filename);
    }
  }

  async #openLayer(
    filename: string,
    path: string,
    format: string,
    readOnly: boolean,
    followBacking: boolean,
    depth: number,
    layers: ImageLayer[],
    opened: BlockDriver[],
    policy: BackingPolicy,
    options: OpenOptions,
  ): Promise<BlockDriver> {
    if (format !== 'raw' && format !== 'qcow2') throw new VimgError('UNSUPPORTED', `Unknown file format '${format}' (vimg reads raw and qcow2)`, { path: filename });
    const index = layers.length;
    layers.push({ filename, path, format, driver: undefined as unknown as BlockDriver });
    // -t/-T apply to the whole chain, as QEMU's backing files inherit the cache mode.
    const file: BlockFile = await NodeFile.open(path, { readOnly, ...(options.cache !== undefined ? { cache: options.cache } : {}) });
    let driver: BlockDriver;
    if (format === 'raw') {
      driver = RawDriver.open(file, { readOnly });
    } else {
      try {
        driver = await Qcow2Driver.open(file, {
          readOnly,
          path: filename,
          codecs: await this.#loadCodecs(),
          ignoreBacking: !followBacking,
          openBacking: async (name, backingFormat) => {
            const resolved = policy.resolve(path, name, backingFormat, depth + 1);
            return this.#openLayer(pathCombine(filename, name), resolved.path, resolved.format, !(options.writableBacking ?? false), true, depth + 1, layers, opened, policy, options);
          },
        });
      } catch (error) {
        await file.close().catch(() => undefined);
        throw error;
      }
    }
    opened.push(driver);
    layers[index] = { filename, path, format, driver };
    return driver;
  }

  #loadCodecs(): Promise<{ deflate: Qcow2Codec; zstd: Qcow2Codec }> {
    this.#codecs ??= createZstdCodec().then((zstd: Qcow2Codec) => ({ deflate: createNodeDeflateCodec(), zstd }));
    return this.#codecs;
  }

  async create(request: CreateRequest): Promise<void> {
    const file = await NodeFile.open(request.path, { create: true });
    try {
      if (request.format === 'raw') {
        await createRaw(file, { size: request.size, preallocation: request.options.preallocation });
      } else {
        const o = request.options;
        await createQcow2(file, {
          size: request.size,
          clusterSize: o.clusterSize,
          compat: o.compat,
          lazyRefcounts: o.lazyRefcounts,
          extendedL2: o.extendedL2,
          refcountBits: o.refcountBits,
          compressionType: o.compressionType === 'zstd' ? 'zstd' : 'deflate',
          preallocation: o.preallocation,
          ...(o.backingFile !== undefined ? { backingFile: o.backingFile } : {}),
          ...(o.backingFormat !== undefined ? { backingFormat: o.backingFormat } : {}),
        });
      }
      await file.flush();
    } finally {
      await file.close();
    }
  }

  async listSnapshots(chain: ImageChain): Promise<readonly SnapshotInfo[]> {
    const snapshots = await listSnapshots(qcow2Of(chain, 'snapshot'));
    return snapshots.map((s) => ({
      id: s.id,
      name: s.name,
      vmStateSize: s.vmStateSize,
      dateSec: s.dateSec,
      dateNsec: s.dateNsec,
      vmClockNsec: Number(s.vmClockNsec),
      ...(s.icount === -1n ? {} : { icount: Number(s.icount) }),
    }));
  }

  async createSnapshot(chain: ImageChain, name: string): Promise<void> {
    await createSnapshot(qcow2Of(chain, 'snapshot'), { name });
  }

  async applySnapshot(chain: ImageChain, name: string): Promise<void> {
    await applySnapshot(qcow2Of(chain, 'snapshot'), name).catch((error: unknown) => {
      throw snapshotNotFound(error, name);
    });
  }

  async deleteSnapshot(chain: ImageChain, name: string): Promise<void> {
    await deleteSnapshot(qcow2Of(chain, 'snapshot'), name).catch((error: unknown) => {
      throw snapshotNotFound(error, name);
    });
  }

  async check(filename: string, format: string | undefined, repair: 'leaks' | 'all' | undefined): Promise<CheckReport> {
    const actual = format ?? (await probeFormat(filename));
    if (actual !== 'qcow2') throw new VimgError('UNSUPPORTED', `This image format does not support checks (${actual})`);
    const file = await NodeFile.open(filename, { readOnly: repair === undefined }).catch((error: unknown) => {
      throw wrapOpenError(error, filename);
    });
    try {
      const r = await checkQcow2(file, { filename, ...(repair !== undefined ? { repair } : {}) });
      if (repair !== undefined) await file.flush();
      return {
        filename,
        format: 'qcow2',
        checkErrors: r['check-errors'],
        corruptions: r.corruptions,
        leaks: r.leaks,
        corruptionsFixed: r['corruptions-fixed'],
        leaksFixed: r['leaks-fixed'],
        imageEndOffset: r['image-end-offset'],
        totalClusters: r['total-clusters'],
        allocatedClusters: r['allocated-clusters'],
        fragmentedClusters: r['fragmented-clusters'],
        compressedClusters: r['compressed-clusters'],
        messages: r.messages,
      };
    } finally {
      await file.close();
    }
  }

  async setBacking(chain: ImageChain, backingFile: string | undefined, backingFormat: string | undefined): Promise<void> {
    const driver = chain.top;
    if (!(driver instanceof Qcow2Driver)) throw new VimgError('UNSUPPORTED', `Operation not supported: the backing file of a '${chain.layers[0]?.format ?? '?'}' image cannot be changed`);
    await setQcow2Backing(driver, backingFile, backingFormat).catch((error: unknown) => {
      if (BlockError.isInstance(error) && error.code === 'INVALID_ARGUMENT') {
        throw new VimgError('UNSUPPORTED', `Could not change the backing file to '${backingFile ?? ''}': ${error.message}`, {}, { cause: error });
      }
      throw error;
    });
  }

  async makeEmpty(chain: ImageChain): Promise<void> {
    const driver = chain.top;
    if (!(driver instanceof Qcow2Driver)) throw new VimgError('UNSUPPORTED', `Emptying a '${chain.layers[0]?.format ?? '?'}' image is not supported (use commit -d)`);
    await makeEmptyQcow2(driver);
  }

  async amend(chain: ImageChain, options: ReadonlyMap<string, string>): Promise<void> {
    const driver = qcow2Of(chain, 'option amendment');
    const compat = options.get('compat');
    const lazy = options.get('lazy_refcounts');
    await amendQcow2(driver, {
      ...(compat !== undefined ? { compat: compat === '0.10' || compat === 'v2' ? '0.10' as const : '1.1' as const } : {}),
      ...(lazy !== undefined ? { lazyRefcounts: parseOnOff('lazy_refcounts', lazy) } : {}),
    }).catch((error: unknown) => {
      if (BlockError.isInstance(error) && error.code === 'UNSUPPORTED') throw new VimgError('UNSUPPORTED', error.message, {}, { cause: error });
      throw error;
    });
  }

  async writeCompressed(driver: BlockDriver, offset: number, data: Uint8Array): Promise<void> {
    if (!(driver instanceof Qcow2Driver)) throw new VimgError('UNSUPPORTED', 'compressed writes need a qcow2 target');
    await driver.writeCompressed(offset, data);
  }

  async actualSize(path: string): Promise<number | undefined> {
    try {
      return (await stat(path)).blocks * 512;
    } catch {
      return undefined;
    }
  }
}

function qcow2Of(chain: ImageChain, what: string): Qcow2Driver {
  const driver = chain.top;
  if (!(driver instanceof Qcow2Driver)) throw new VimgError('UNSUPPORTED', `This image format does not support ${what}s (${chain.layers[0]?.format ?? '?'})`);
  return driver;
}

function snapshotNotFound(error: unknown, name: string): unknown {
  if (BlockError.isInstance(error) && error.code === 'INVALID_ARGUMENT' && error.message.includes('not found')) {
    return new VimgError('SNAPSHOT_NOT_FOUND', `Could not find snapshot '${name}'`, {}, { cause: error });
  }
  return error;
}

/** qcow2 when the file starts with its magic, raw otherwise (top images only). */
async function probeFormat(filename: string): Promise<string> {
  const file = await NodeFile.open(filename, { readOnly: true }).catch((error: unknown) => {
    throw wrapOpenError(error, filename);
  });
  try {
    const magic = new Uint8Array(4);
    await file.read(0, magic);
    return QCOW2_MAGIC.every((byte, i) => magic[i] === byte) ? 'qcow2' : 'raw';
  } finally {
    await file.close();
  }
}

/** `Could not open 'x': <why>` as qemu-img says it, keeping our codes. */
function wrapOpenError(error: unknown, filename: string): unknown {
  if (VimgError.isInstance(error)) return error;
  if (BlockError.isInstance(error)) {
    const cause = error.cause as { code?: string } | undefined;
    if (cause?.code === 'ENOENT') return new VimgError('OPEN_FAILED', `Could not open '${filename}': No such file or directory`, { path: filename }, { cause: error });
    if (error.code === 'UNSUPPORTED' && error.message.includes('O_DIRECT')) {
      return new VimgError('OPEN_FAILED', `Could not open '${filename}': filesystem does not support O_DIRECT`, { path: filename }, { cause: error });
    }
    return error;
  }
  return error;
}
