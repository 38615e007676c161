import { startServe } from './serve.js';
import { parseServeOptions } from './serve-options.js';

export interface ServeCommandOptions {
  readonly blk?: string[];
  readonly net?: string[];
  readonly rng?: string[];
  readonly scsi?: string[];
}

/**
 * `vmm serve`: a vhost-user device daemon, like qemu-storage-daemon. Runs until SIGTERM or SIGINT,
 * then ends every connection (in-flight requests complete), flushes and closes every image, and
 * exits 0. A bad option fails before anything starts.
 */
export async function serveCommand(options: ServeCommandOptions, log: (line: string) => void): Promise<void> {
  const specs = parseServeOptions(options);
  const handle = await startServe(specs, (line) => log(`vmm serve: ${line}`));
  log(`vmm serve: ${specs.length} device(s) ready; SIGTERM to stop`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log(`vmm serve: ${signal}: stopping`);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      void handle.shutdown().then(resolve);
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    void handle.stopped.then(resolve);
  });
  log('vmm serve: stopped');
}
