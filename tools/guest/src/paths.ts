import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo>/.cache/guest` (or `$VIRTIO_TS_CACHE/guest`): an ignored folder for build outputs. */
export function defaultCacheDir(): string {
  if (process.env.VIRTIO_TS_CACHE) return path.join(process.env.VIRTIO_TS_CACHE, 'guest');
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (dir !== path.dirname(dir)) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return path.join(dir, '.cache', 'guest');
    dir = path.dirname(dir);
  }
  return path.join(process.cwd(), '.cache', 'guest');
}
