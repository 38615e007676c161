import type { BlockDriver } from '@virtio-ts/block';
import type { ConvertCommand } from '../cli/parse.js';
import { VimgError } from '../errors.js';
import { ProgressPrinter } from '../format/progress.js';
import { checkFormat } from '../image/create-options.js';
import type { ImageChain, ImageHost } from '../image/image-host.js';
import { buildCreateRequest } from './create.js';
import { CHUNK_SIZE, isZero, runPool, statusOf } from './copy.js';
import type { CommandContext } from './context.js';

/** Chunks in flight (qemu-img convert runs 8 coroutines by default, -m 8). */
const PARALLEL_CHUNKS = 8;

/**
 * `vimg convert`: copies the guest-visible contents of one or more images (concatenated) into a
 * new image. Zero ranges are not written to a fresh target (`-S`, default 4 KiB granularity);
 * with `-B`, ranges equal to what the new backing file already holds are not written either.
 */
export async function runConvert(command: ConvertCommand, context: CommandContext): Promise<number> {
  const format = checkFormat(command.outputFormat);
  if (command.compress && format !== 'qcow2') throw new VimgError('UNSUPPORTED', `Compression not supported for this file format (${format})`);
  if (command.compress && context.host.writeCompressed === undefined) throw new VimgError('UNSUPPORTED', 'Compressed writes (convert -c) are not available in this build of @virtio-ts/block');
  const sources: ImageChain[] = [];
  try {
    for (const name of command.sources) {
      sources.push(
        await context.host.open(name, {
          ...(command.format !== undefined ? { format: command.format } : {}),
          writable: false,
          cache: command.sourceCache,
          allowBacking: command.allowBacking,
        }),
      );
    }
    const total = sources.reduce((sum, chain) => sum + chain.top.length, 0);
    const targetBacking = command.options.get('backing_file');
    if (!command.noCreate) {
      const request = await buildCreateRequest(context.host, command.target, format, total, command.options, true);
      await context.host.create(request);
    }
    const target = await context.host.open(command.target, {
      format,
      writable: true,
      cache: command.cache,
      allowBacking: [...command.allowBacking, ...(targetBacking !== undefined ? [targetBacking] : [])],
    });
    try {
      if (target.top.length < total) throw new VimgError('MISMATCH', `The target is smaller (${target.top.length} bytes) than the source (${total} bytes)`);
      const progress = command.progress ? new ProgressPrinter(context.io.stdout) : undefined;
      progress?.start();
      await copyImages(sources, target, {
        host: context.host,
        fresh: !command.noCreate,
        hasBacking: target.layers.length > 1,
        sparseSize: command.sparseSize,
        compress: command.compress,
        onProgress: (done) => progress?.update(done, total),
      });
      await target.top.flush();
      progress?.end();
    } finally {
      await target.close();
    }
    return 0;
  } finally {
    for (const chain of sources) await chain.close();
  }
}

interface CopyOptions {
  readonly host: ImageHost;
  /** The target was just created: it reads as zeroes (or as its backing file) everywhere. */
  readonly fresh: boolean;
  readonly hasBacking: boolean;
  readonly sparseSize: number;
  readonly compress: boolean;
  readonly onProgress: (done: number) => void;
}

/** One range of the concatenated sources. */
interface Piece {
  readonly source: BlockDriver;
  readonly sourceOffset: number;
  readonly targetOffset: number;
  readonly length: number;
}

function* pieces(sources: readonly ImageChain[], chunk: number): Generator<Piece> {
  let targetOffset = 0;
  for (const chain of sources) {
    for (let offset = 0; offset < chain.top.length; offset += chunk) {
      const length = Math.min(chunk, chain.top.length - offset);
      yield { source: chain.top, sourceOffset: offset, targetOffset: targetOffset + offset, length };
    }
    targetOffset += chain.top.length;
  }
}

/** Copies every source into the target; see runConvert for what is skipped. */
export async function copyImages(sources: readonly ImageChain[], target: ImageChain, options: CopyOptions): Promise<void> {
  const out = target.top;
  const info = await out.info();
  const cluster = info.clusterSize ?? 65536;
  const chunk = options.compress ? Math.max(cluster, CHUNK_SIZE - (CHUNK_SIZE % cluster)) : CHUNK_SIZE;
  const granule = Math.max(out.requestAlignment, options.compress ? cluster : options.sparseSize > 0 ? options.sparseSize : chunk);
  let done = 0;
  // One reusable buffer per chunk in flight: no allocation (and zero-filling) per request.
  const buffers: Uint8Array[] = [];
  await runPool(pieces(sources, chunk), PARALLEL_CHUNKS, async (piece) => {
    const buffer = buffers.pop() ?? new Uint8Array(chunk);
    try {
      // The chunk's runs by allocation status first (compressed output needs whole target
      // clusters: the chunk is one data run); then every data run is read at once, and written.
      const runs: { offset: number; length: number; zero: boolean }[] = [];
      for (let offset = 0; offset < piece.length; ) {
        const status = options.compress ? { length: piece.length, zero: false, data: true } : await statusOf(piece.source, piece.sourceOffset + offset, piece.length - offset);
        const zero = status.zero && !status.data;
        const last = runs[runs.length - 1];
        if (last !== undefined && last.zero === zero) last.length += status.length;
        else runs.push({ offset, length: status.length, zero });
        offset += status.length;
      }
      await settleAll(runs.filter((run) => !run.zero).map((run) => piece.source.read(piece.sourceOffset + run.offset, buffer.subarray(run.offset, run.offset + run.length))));
      await settleAll(
        runs.map((run) =>
          run.zero
            ? writeZeroRange(out, piece.targetOffset + run.offset, run.length, options)
            : writeData(out, piece.targetOffset + run.offset, buffer.subarray(run.offset, run.offset + run.length), granule, options),
        ),
      );
    } finally {
      buffers.push(buffer);
    }
    done += piece.length;
    options.onProgress(done);
  });
}

async function writeZeroRange(out: BlockDriver, offset: number, length: number, options: CopyOptions): Promise<void> {
  if (options.fresh && !options.hasBacking) return;
  if (options.hasBacking) {
    // Only where the target's backing file is not zero already.
    const current = new Uint8Array(length);
    await out.read(offset, current);
    if (isZero(current)) return;
  }
  if (out.writeZeroes !== undefined) await out.writeZeroes(offset, length);
  else await out.write(offset, new Uint8Array(length));
}

/** Writes `data` at `offset` in `granule`-sized pieces, skipping those the target already holds. */
async function writeData(out: BlockDriver, offset: number, data: Uint8Array, granule: number, options: CopyOptions): Promise<void> {
  const current = options.hasBacking || !options.fresh ? new Uint8Array(data.length) : undefined;
  if (current !== undefined && options.hasBacking) await out.read(offset, current);
  let runStart = -1;
  // The runs' writes are issued together (distinct ranges) and awaited at the end.
  const writes: Promise<void>[] = [];
  const flushRun = (end: number): void => {
    if (runStart < 0) return;
    const slice = data.subarray(runStart, end);
    if (options.compress) {
      for (let at = 0; at < slice.length; at += granule) writes.push(options.host.writeCompressed!(out, offset + runStart + at, slice.subarray(at, at + granule)));
    } else {
      writes.push(out.write(offset + runStart, slice));
    }
    runStart = -1;
  };
  const sparse = options.fresh && !options.hasBacking && (options.sparseSize > 0 || options.compress);
  for (let at = 0; at < data.length; at += granule) {
    const end = Math.min(data.length, at + granule);
    let skip: boolean;
    if (options.hasBacking) skip = equal(data.subarray(at, end), current!.subarray(at, end));
    // -S: a granule of zeroes is not written to a fresh target (most data granules are told
    // apart by their first or last byte, without a view or a scan).
    else if (sparse) skip = data[at] === 0 && data[end - 1] === 0 && isZero(data.subarray(at, end));
    else skip = false;
    if (skip) {
      flushRun(at);
    } else if (runStart < 0) {
      runStart = at;
    }
  }
  flushRun(data.length);
  await settleAll(writes);
}

/** Waits for every request (none may still use a buffer afterwards), then throws the first failure. */
async function settleAll(requests: readonly Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(requests);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}
