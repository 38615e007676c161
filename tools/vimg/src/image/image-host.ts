import type { BlockDriver } from '@virtio-ts/block';
import type { CheckReport } from '../format/check-result.js';
import type { SnapshotInfo } from '../format/image-info.js';
import type { Qcow2CreateOptions, RawCreateOptions } from './create-options.js';

/** One image of an opened chain: the top image the user named, then its backing files. */
export interface ImageLayer {
  /** The name as the user gave it (top) or as the parent image records it (backing files). */
  readonly filename: string;
  /** Absolute, symlink-resolved host path. */
  readonly path: string;
  readonly format: string;
  /** This layer's driver, reading through to the layers below it. */
  readonly driver: BlockDriver;
}

/** An opened image with its backing chain; `layers[0]` is the image the user named. */
export interface ImageChain {
  readonly layers: readonly ImageLayer[];
  /** layers[0].driver. */
  readonly top: BlockDriver;
  /** Closes every layer, top first. */
  close(): Promise<void>;
}

/** How vimg opens an image. */
export interface OpenOptions {
  /** `-f`; probed from the magic when absent (raw when nothing matches). */
  readonly format?: string;
  readonly writable: boolean;
  /** Open the backing chain (default true); false opens the image alone. */
  readonly backing?: boolean;
  /** Which layers must be writable besides the top (for commit). */
  readonly writableBacking?: boolean;
  /** Files the user named that may be followed as backing files (see BackingPolicy). */
  readonly allowBacking?: readonly string[];
  /** `-t`: host cache mode of the top image. */
  readonly cache?: 'none' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe';
}

/** What `vimg create` (and convert's target) asks for; options are validated already. */
export type CreateRequest =
  | { readonly path: string; readonly format: 'qcow2'; readonly size: number; readonly options: Qcow2CreateOptions }
  | { readonly path: string; readonly format: 'raw'; readonly size: number; readonly options: RawCreateOptions };

/**
 * What vimg needs from @virtio-ts/block, behind one interface so that commands are tested
 * without the host and a missing capability is one clear UNSUPPORTED error.
 */
export interface ImageHost {
  open(filename: string, options: OpenOptions): Promise<ImageChain>;
  create(request: CreateRequest): Promise<void>;
  /** qcow2 internal snapshots. */
  listSnapshots(chain: ImageChain): Promise<readonly SnapshotInfo[]>;
  createSnapshot(chain: ImageChain, name: string): Promise<void>;
  applySnapshot(chain: ImageChain, name: string): Promise<void>;
  deleteSnapshot(chain: ImageChain, name: string): Promise<void>;
  /** Consistency check, optionally repairing. */
  check(filename: string, format: string | undefined, repair: 'leaks' | 'all' | undefined): Promise<CheckReport>;
  /**
   * Rewrites the backing file name and format recorded in the top image. Optional: absent when
   * @virtio-ts/block has no header rewrite; rebase then reports UNSUPPORTED before touching data.
   */
  setBacking?(chain: ImageChain, backingFile: string | undefined, backingFormat: string | undefined): Promise<void>;
  /** Optional: makes the top image empty (every cluster unallocated), for commit without -d. */
  makeEmpty?(chain: ImageChain): Promise<void>;
  /** Optional: changes header options in place (compat, lazy_refcounts...). */
  amend?(chain: ImageChain, options: ReadonlyMap<string, string>): Promise<void>;
  /** Writes whole clusters compressed (convert -c); returns false when the target cannot. */
  writeCompressed?(driver: BlockDriver, offset: number, data: Uint8Array): Promise<void>;
  /** Bytes the file takes on the host (st_blocks * 512). */
  actualSize(path: string): Promise<number | undefined>;
}
