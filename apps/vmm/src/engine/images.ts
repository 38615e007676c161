import { createQcow2, createRaw, MemoryFile, Qcow2Driver, RawDriver, type BlockDriver, type BlockFile } from '@virtio-ts/block';
import { NodeFile, openImage, createNodeDeflateCodec } from '@virtio-ts/block/node';
import { guestDisks, type BlkDeviceConfig, type ScsiLunConfig, type VmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';
import type { OpenedDisk } from './devices.js';
import { timeBlockDriver } from './timed-block-driver.js';

function imageError(field: string, error: unknown): VmmError {
  const message = error instanceof Error ? error.message : String(error);
  // The block layer's message already names the path and its own code.
  return new VmmError('IMAGE', `${field}: ${message}`, {}, { cause: error });
}

/** Opens one disk (a blk device's, a scsi LUN's): the image file, or a fresh memory disk of `size` in the configured format. */
async function openDisk(device: BlkDeviceConfig | ScsiLunConfig): Promise<{ driver: BlockDriver; path?: string }> {
  if (device.path !== undefined) {
    // Backing files stay refused (HOSTILE-INPUTS H18): `vmm run` opens only the image it is given.
    const driver = await openImage(device.path, { format: device.format, readOnly: device.readOnly, codecs: { deflate: createNodeDeflateCodec() } });
    return { driver, path: device.path };
  }
  const file = new MemoryFile();
  return { driver: await createDriver(file, device.format, device.size!, device.readOnly) };
}

async function createDriver(file: BlockFile, format: 'raw' | 'qcow2', size: number, readOnly = false): Promise<BlockDriver> {
  if (format === 'qcow2') {
    await createQcow2(file, { size });
    return Qcow2Driver.open(file, { readOnly });
  }
  await createRaw(file, { size });
  return RawDriver.open(file, { readOnly });
}

/**
 * Opens every disk of the config (blk devices and scsi LUNs), by disk number, each wrapped to
 * time the backing store. All or nothing: when one fails, those already open are closed and IMAGE
 * names the device (`devices.2.luns.1: ...`).
 */
export async function openDisks(config: Pick<VmConfig, 'devices'>): Promise<OpenedDisk[]> {
  const disks: OpenedDisk[] = [];
  try {
    for (const disk of guestDisks(config)) {
      try {
        const { driver, path } = await openDisk(disk.medium);
        disks.push({
          driver: timeBlockDriver(driver),
          format: disk.medium.format,
          device: disk.device,
          ...(disk.lun === undefined ? {} : { lun: disk.lun }),
          ...(path === undefined ? {} : { path }),
        });
      } catch (error) {
        throw imageError(disk.lun === undefined ? `devices.${disk.device}` : `devices.${disk.device}.luns.${disk.lun.index}`, error);
      }
    }
    return disks;
  } catch (error) {
    await Promise.allSettled(disks.map((d) => d.driver.close()));
    throw error;
  }
}

/** Creates an image file of `size` bytes (`vmm run`'s default disk; tests). Refuses to overwrite. */
export async function createImage(path: string, format: 'raw' | 'qcow2', size: number): Promise<void> {
  let file: NodeFile | undefined;
  try {
    file = await NodeFile.open(path, { create: true });
    if (file.length !== 0) throw new VmmError('IMAGE', 'refusing to overwrite an existing file', { path });
    if (format === 'qcow2') await createQcow2(file, { size });
    else await createRaw(file, { size });
  } catch (error) {
    if (VmmError.isInstance(error)) throw error;
    throw new VmmError('IMAGE', `cannot create ${format} image: ${error instanceof Error ? error.message : String(error)}`, { path }, { cause: error });
  } finally {
    await file?.close();
  }
}

/** Reads `length` bytes at `offset` of an image through @virtio-ts/block (tests check what the guest wrote). */
export async function readImage(path: string, format: 'raw' | 'qcow2', offset: number, length: number): Promise<Uint8Array> {
  const driver = await openImage(path, { format, readOnly: true });
  try {
    const bytes = new Uint8Array(length);
    await driver.read(offset, bytes);
    return bytes;
  } finally {
    await driver.close();
  }
}
