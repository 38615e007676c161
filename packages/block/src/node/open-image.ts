/**
 * `openImage`: opens an image file by path with format probing and backing chains.
 */
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BlockDriver } from '../block-driver.js';
import { BlockError } from '../errors.js';
import { probeFormat, type ImageFormat } from '../probe.js';
import type { Qcow2Codec } from '../qcow2/codec.js';
import { MAX_BACKING_DEPTH } from '../qcow2/constants.js';
import { Qcow2Driver } from '../qcow2/qcow2-driver.js';
import { RawDriver } from '../raw/raw-driver.js';
import type { CacheMode } from './cache-mode.js';
import { NodeFile } from './file.js';

/** Options of {@link openImage}. */
export interface OpenImageOptions {
  /** The format; probed from the magic when omitted (a file that is not qcow2 opens as raw). */
  readonly format?: ImageFormat;
  readonly readOnly?: boolean;
  /**
   * Whether backing files may be opened (default false: an image with a backing file is refused,
   * so an untrusted image cannot make us read an arbitrary host file). `'ignore'` opens the image
   * alone, unallocated clusters reading as zeroes (for `info`).
   */
  readonly allowBacking?: boolean | 'ignore';
  /** Maximum backing chain depth (default and upper bound 64). */
  readonly maxBackingDepth?: number;
  /** Codecs for compressed qcow2 clusters (e.g. createNodeDeflateCodec()). */
  readonly codecs?: { readonly deflate?: Qcow2Codec; readonly zstd?: Qcow2Codec };
  readonly l2CacheBytes?: number;
  readonly refcountCacheBytes?: number;
  /** Host cache mode of every file of the chain, qemu-img's `-t` (default `writeback`). */
  readonly cache?: CacheMode;
  /** With `cache` none/directsync on a file system without O_DIRECT: `'error'` (default) or `'buffered'`. */
  readonly directFallback?: 'error' | 'buffered';
}

/**
 * Opens the image at `path`. Backing files (always read-only) are resolved relative to the
 * directory of the image that names them; chains deeper than `maxBackingDepth` and loops are
 * refused with INVALID_ARGUMENT naming the chain. Closing the returned driver closes the chain.
 *
 * @example
 * const disk = await openImage('disk.qcow2', { allowBacking: true });
 * const sector = new Uint8Array(512);
 * await disk.read(0, sector);
 * await disk.close();
 */
export async function openImage(path: string, options: OpenImageOptions = {}): Promise<BlockDriver> {
  const maxDepth = Math.min(options.maxBackingDepth ?? MAX_BACKING_DEPTH, MAX_BACKING_DEPTH);
  return openAt(path, options, options.format, options.readOnly === true, [], maxDepth);
}

async function openAt(
  path: string,
  options: OpenImageOptions,
  format: ImageFormat | undefined,
  readOnly: boolean,
  chain: string[],
  maxDepth: number,
): Promise<BlockDriver> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    throw new BlockError('IO', `cannot open image: ${(error as Error).message}`, { op: 'open', path }, { cause: error });
  }
  if (chain.includes(real)) {
    throw new BlockError('INVALID_ARGUMENT', `backing chain loops: ${[...chain, real].join(' -> ')}`, { op: 'open', path });
  }
  if (chain.length > maxDepth) {
    throw new BlockError('INVALID_ARGUMENT', `backing chain deeper than ${maxDepth}`, { op: 'open', path });
  }
  const file = await NodeFile.open(path, {
    readOnly,
    ...(options.cache === undefined ? {} : { cache: options.cache }),
    ...(options.directFallback === undefined ? {} : { directFallback: options.directFallback }),
  });
  try {
    const actual = format ?? (await probeFormat(file));
    if (actual === 'raw') return RawDriver.open(file, { readOnly });
    if (actual !== 'qcow2') throw new BlockError('UNSUPPORTED', `unknown image format '${String(actual)}'`, { op: 'open', path });
    const nextChain = [...chain, real];
    return await Qcow2Driver.open(file, {
      readOnly,
      path,
      ignoreBacking: options.allowBacking === 'ignore',
      ...(options.codecs === undefined ? {} : { codecs: options.codecs }),
      ...(options.l2CacheBytes === undefined ? {} : { l2CacheBytes: options.l2CacheBytes }),
      ...(options.refcountCacheBytes === undefined ? {} : { refcountCacheBytes: options.refcountCacheBytes }),
      ...(options.allowBacking === true
        ? {
            openBacking: (name: string, backingFormat: string | undefined) => {
              if (name.startsWith('json:') || /^[a-z+]+:\/\//i.test(name)) {
                throw new BlockError('UNSUPPORTED', `backing file '${name}' is not a local path`, { op: 'open', path });
              }
              if (backingFormat !== undefined && backingFormat !== 'raw' && backingFormat !== 'qcow2') {
                throw new BlockError('UNSUPPORTED', `backing format '${backingFormat}' is not supported`, { op: 'open', path });
              }
              const backingPath = isAbsolute(name) ? name : resolve(dirname(path), name);
              return openAt(backingPath, options, backingFormat, true, nextChain, maxDepth);
            },
          }
        : {}),
    });
  } catch (error) {
    await file.close().catch(() => undefined);
    throw error;
  }
}
