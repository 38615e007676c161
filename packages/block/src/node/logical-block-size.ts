/**
 * The logical block size O_DIRECT requests must be aligned to. For a file on a block device it
 * is the device's `queue/logical_block_size` in sysfs (found through st_dev); for a block device
 * through st_rdev. Where neither exists (tmpfs, network file systems) it is 4096, the largest
 * logical block size in use and QEMU's fallback too.
 */
import { readFile } from 'node:fs/promises';

export const FALLBACK_BLOCK_SIZE = 4096;

function majorMinor(dev: number): string {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  return `${major}:${minor}`;
}

async function readSize(path: string): Promise<number | undefined> {
  try {
    const value = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isSafeInteger(value) && value >= 512 && value <= 65536 && (value & (value - 1)) === 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The logical block size for a file with these stat numbers. */
export async function logicalBlockSize(stat: { dev: number; rdev: number; isBlockDevice(): boolean }): Promise<number> {
  const dev = stat.isBlockDevice() ? stat.rdev : stat.dev;
  const id = majorMinor(dev);
  if (id.startsWith('0:')) return FALLBACK_BLOCK_SIZE;
  const dir = `/sys/dev/block/${id}`;
  return (
    (await readSize(`${dir}/queue/logical_block_size`)) ?? (await readSize(`${dir}/../queue/logical_block_size`)) ?? FALLBACK_BLOCK_SIZE
  );
}
