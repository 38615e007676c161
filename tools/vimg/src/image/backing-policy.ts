import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { VimgError } from '../errors.js';

/**
 * Longest backing chain vimg follows. QEMU has no limit; a chain 1000 deep (HOSTILE-INPUTS H18)
 * must be refused, and real chains (oVirt snapshot chains) stay far below 64.
 */
export const MAX_BACKING_DEPTH = 64;

/**
 * The backing-file rule (HOSTILE-INPUTS H18: an image must not make vimg read arbitrary host
 * files). vimg follows the backing file an image records only when all of these hold:
 * 1. its format is recorded in the image (backing_fmt) or given by the user: vimg never probes a
 *    backing file, so a name like /etc/passwd cannot be read as a raw disk by guessing;
 * 2. it is a plain file name, not a protocol (`nbd:`, `json:`, `file:`...);
 * 3. after resolving it against the directory of the image that names it and following
 *    symlinks, it lies inside the directory tree of the image the user named on the command
 *    line, OR it is a file the user named explicitly (an image operand, `-b`/`-B`, or
 *    `--allow-backing FILE`);
 * 4. it is not already in the chain (a loop), and the chain is at most MAX_BACKING_DEPTH deep.
 * Anything else is refused with BACKING_REFUSED naming the rule; nothing is opened.
 */
export class BackingPolicy {
  readonly #root: string;
  readonly #allowed: Set<string>;
  readonly #seen = new Set<string>();

  /**
   * @param topPath the image the user named (its directory is the trusted tree)
   * @param allowed further files the user named explicitly
   */
  constructor(topPath: string, allowed: readonly string[] = []) {
    const top = realOrResolved(topPath);
    this.#root = dirname(top);
    this.#seen.add(top);
    this.#allowed = new Set(allowed.map(realOrResolved));
  }

  /**
   * Decides whether the backing file `name` recorded by the image at `parentPath` may be opened.
   * Returns its absolute path; throws VimgError BACKING_REFUSED otherwise.
   */
  resolve(parentPath: string, name: string, format: string | undefined, depth: number): { path: string; format: string } {
    if (depth > MAX_BACKING_DEPTH) throw refuse(`backing chain deeper than ${MAX_BACKING_DEPTH} images`, name);
    if (/^[a-z][a-z0-9+.-]*:/i.test(name) && !name.startsWith('./')) throw refuse('backing file names a protocol, not a file', name);
    if (format === undefined) throw refuse("the image does not record the backing file's format (vimg never probes backing files; fix with 'vimg rebase -u -b <file> -F <fmt>')", name);
    const joined = isAbsolute(name) ? name : resolve(dirname(parentPath), name);
    const path = realOrResolved(joined);
    if (this.#seen.has(path)) throw refuse('backing chain loops back to an image already in it', name);
    const rel = relative(this.#root, path);
    const inside = rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
    if (!inside && !this.#allowed.has(path)) {
      throw refuse(`backing file lies outside ${this.#root}${sep} and was not named on the command line (pass it with --allow-backing ${path})`, name);
    }
    this.#seen.add(path);
    return { path, format };
  }
}

function refuse(reason: string, name: string): VimgError {
  return new VimgError('BACKING_REFUSED', `Refusing backing file '${name}': ${reason}`, { path: name });
}

/** realpath when the file exists; the lexically resolved path otherwise (open reports it). */
export function realOrResolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/**
 * qemu's path_combine: the name a backing file is shown with. An absolute backing name stays;
 * a relative one is joined to the directory part of the parent's name as the user wrote it.
 */
export function pathCombine(parentName: string, backingName: string): string {
  if (isAbsolute(backingName) || /^[a-z][a-z0-9+.-]*:/i.test(backingName)) return backingName;
  const slash = parentName.lastIndexOf('/');
  return slash < 0 ? backingName : `${parentName.slice(0, slash + 1)}${backingName}`;
}
