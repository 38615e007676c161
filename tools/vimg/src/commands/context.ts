import type { ImageHost } from '../image/image-host.js';

/** Where a command writes: stdout and stderr as strings (captured in tests). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** What every command runs with. */
export interface CommandContext {
  readonly io: CliIo;
  readonly host: ImageHost;
}
