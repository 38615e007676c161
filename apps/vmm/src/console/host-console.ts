import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { ReadStream as TtyReadStream } from 'node:tty';
import type { Readable, Writable } from 'node:stream';
import type { ConsoleBackend } from '@virtio-ts/backends';
import { closeFd, openPty, writeFd } from '@virtio-ts/host';

/** A console host side that can be closed (the VMM closes every backend when the run ends). */
export interface ClosableConsoleBackend extends ConsoleBackend {
  /** What the user attaches to, for the report (`stdio`, the socket path, the pty path). */
  readonly describe: string;
  close(): void;
}

/**
 * The console's host side over a pair of Node streams: the guest's output is written to
 * `output`, whatever `input` yields goes to the guest. `stdio` is `process.stdin`/`process.stdout`.
 */
export class StreamConsoleBackend implements ClosableConsoleBackend {
  readonly describe: string;
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();
  private readonly onChunk = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice();
    for (const listener of this.listeners) listener(bytes);
  };

  constructor(private readonly input: Readable, private readonly output: Writable, describe = 'stream') {
    this.describe = describe;
    input.on('data', this.onChunk);
  }

  write(bytes: Uint8Array): void {
    this.output.write(bytes.slice());
  }

  onData(callback: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  close(): void {
    this.input.off('data', this.onChunk);
    this.input.pause();
  }
}

/** The console on the VMM's own stdin/stdout (as QEMU's `-serial stdio`). */
export function stdioConsole(): StreamConsoleBackend {
  return new StreamConsoleBackend(process.stdin, process.stdout, 'stdio');
}

/**
 * The console on a Unix socket the VMM listens on (as QEMU's `-chardev socket,server=on`): one
 * client at a time; while no client is attached the guest's output is dropped and counted.
 */
export class SocketConsoleBackend implements ClosableConsoleBackend {
  readonly describe: string;
  /** Bytes the guest wrote while nobody was attached. */
  dropped = 0;
  readonly server: Server;
  private client: Socket | undefined;
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();

  private constructor(readonly path: string, server: Server) {
    this.describe = `unix:${path}`;
    this.server = server;
    server.on('connection', (socket) => {
      if (this.client) {
        socket.end('console busy: another client is attached\n');
        return;
      }
      this.client = socket;
      socket.on('data', (chunk: Buffer) => {
        const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice();
        for (const listener of this.listeners) listener(bytes);
      });
      socket.on('close', () => {
        if (this.client === socket) this.client = undefined;
      });
      socket.on('error', () => socket.destroy());
    });
  }

  /** Listens on `path` (a stale socket file from an earlier run is replaced; any other file is an error). */
  static async listen(path: string): Promise<SocketConsoleBackend> {
    const backend = SocketConsoleBackend.open(path);
    await new Promise<void>((resolve, reject) => {
      if (backend.server.listening) return resolve();
      backend.server.once('error', reject);
      backend.server.once('listening', () => resolve());
    });
    return backend;
  }

  /**
   * Starts listening without waiting (for synchronous device construction). A listen error is kept
   * in `error` and the console then drops output.
   */
  static open(path: string): SocketConsoleBackend {
    if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
    const server = createServer();
    const backend = new SocketConsoleBackend(path, server);
    server.on('error', (error) => (backend.error = error));
    server.listen(path);
    return backend;
  }

  /** Why listening failed, if it did. */
  error: Error | undefined;

  write(bytes: Uint8Array): void {
    if (this.client && !this.client.destroyed) this.client.write(bytes.slice());
    else this.dropped += bytes.length;
  }

  onData(callback: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  close(): void {
    this.client?.destroy();
    this.server.close();
    if (existsSync(this.path)) unlinkSync(this.path);
  }
}

/** The console on a new pseudo-terminal (as QEMU's `-chardev pty`): attach with `screen <path>`. */
export class PtyConsoleBackend implements ClosableConsoleBackend {
  readonly describe: string;
  readonly path: string;
  private readonly fd: number;
  private readonly input: TtyReadStream;
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();
  private closed = false;

  constructor() {
    const pty = openPty();
    this.fd = pty.fd;
    this.path = pty.path;
    this.describe = `pty:${pty.path}`;
    this.input = new TtyReadStream(pty.fd);
    this.input.on('data', (chunk: Buffer) => {
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice();
      for (const listener of this.listeners) listener(bytes);
    });
    // EIO when the last slave closes: nobody attached, not an error of ours.
    this.input.on('error', () => undefined);
  }

  write(bytes: Uint8Array): void {
    if (this.closed) return;
    try {
      writeFd(this.fd, bytes);
    } catch {
      // A full or hung-up terminal drops output, as a serial line would.
    }
  }

  onData(callback: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.input.destroy();
    try {
      closeFd(this.fd);
    } catch {
      // the stream closed it
    }
  }
}
