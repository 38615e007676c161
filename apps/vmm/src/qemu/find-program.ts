import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The path of `name` found on $PATH (or `name` itself when it contains a slash), or undefined. */
export function findProgram(name: string, searchPath = process.env.PATH ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : searchPath.split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
