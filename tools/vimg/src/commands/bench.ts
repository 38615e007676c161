import type { BlockDriver } from '@virtio-ts/block';
import type { BenchCommand } from '../cli/parse.js';
import type { CommandContext } from './context.js';

/** Parameters of one benchmark run (qemu-img bench's BenchData). */
export interface BenchParameters {
  readonly count: number;
  readonly depth: number;
  readonly offset: number;
  readonly bufferSize: number;
  readonly stepSize: number;
  readonly write: boolean;
  readonly pattern: number;
  readonly flushInterval: number;
  readonly drainOnFlush: boolean;
}

/**
 * `vimg bench`: the same request stream as qemu-img bench (same offsets, same depth, same flush
 * points) and the same two output lines, so the two are compared run for run.
 */
export async function runBench(command: BenchCommand, context: CommandContext): Promise<number> {
  const chain = await context.host.open(command.filename, {
    ...(command.format !== undefined ? { format: command.format } : {}),
    writable: command.write,
    cache: command.cache,
    allowBacking: command.allowBacking,
  });
  try {
    const step = command.stepSize === 0 ? command.bufferSize : command.stepSize;
    if (!command.quiet) {
      context.io.stdout(
        `Sending ${command.count} ${command.write ? 'write' : 'read'} requests, ${command.bufferSize} bytes each, ${command.depth} in parallel (starting at offset ${command.offset}, step size ${step})\n`,
      );
      if (command.flushInterval > 0) context.io.stdout(`Sending flush every ${command.flushInterval} requests\n`);
    }
    const seconds = await benchDriver(chain.top, {
      count: command.count,
      depth: command.depth,
      offset: command.offset,
      bufferSize: command.bufferSize,
      stepSize: step,
      write: command.write,
      pattern: command.pattern,
      flushInterval: command.flushInterval,
      drainOnFlush: !command.noDrain,
    });
    if (!command.quiet) context.io.stdout(`Run completed in ${seconds.toFixed(3)} seconds.\n`);
    return 0;
  } finally {
    await chain.close();
  }
}

/** Runs the request stream against a driver; returns the elapsed seconds. */
export async function benchDriver(driver: BlockDriver, parameters: BenchParameters): Promise<number> {
  const { count, depth, bufferSize, stepSize, write, flushInterval, drainOnFlush } = parameters;
  const size = driver.length;
  const buffers = Array.from({ length: Math.min(depth, count) }, () => new Uint8Array(bufferSize).fill(parameters.pattern));
  let nextOffset = parameters.offset;
  let issued = 0;
  let completed = 0;
  let inFlight = 0;
  let barrier: Promise<void> | undefined;
  let drained: (() => void) | undefined;
  const undrainedFlushes: Promise<void>[] = [];

  const takeOffset = (): number => {
    const at = nextOffset;
    nextOffset += stepSize;
    // qemu-img bench_cb: wrap within the image so every request fits.
    nextOffset = size <= bufferSize ? 0 : nextOffset % (size - bufferSize);
    return at;
  };

  const worker = async (buffer: Uint8Array): Promise<void> => {
    while (issued < count) {
      if (barrier !== undefined) {
        await barrier;
        continue;
      }
      const at = takeOffset();
      issued += 1;
      inFlight += 1;
      if (write) await driver.write(at, buffer);
      else await driver.read(at, buffer);
      inFlight -= 1;
      completed += 1;
      if (inFlight === 0 && drained !== undefined) drained();
      if (flushInterval > 0 && (count - completed) % flushInterval === 0) {
        if (!drainOnFlush) {
          undrainedFlushes.push(driver.flush());
        } else if (barrier === undefined) {
          barrier = (async () => {
            if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
            drained = undefined;
            await driver.flush();
            barrier = undefined;
          })();
        }
      }
    }
  };

  const start = process.hrtime.bigint();
  await Promise.all(buffers.map(worker));
  if (barrier !== undefined) await barrier;
  await Promise.all(undrainedFlushes);
  return Number(process.hrtime.bigint() - start) / 1e9;
}
