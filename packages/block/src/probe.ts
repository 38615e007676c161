import type { BlockFile } from './block-driver.js';
import { QCOW2_MAGIC } from './qcow2/constants.js';

/** Image formats this package opens. */
export type ImageFormat = 'raw' | 'qcow2';

/** Guesses the format from the magic bytes: qcow2 when the file starts with "QFI\xfb", else raw. */
export async function probeFormat(file: BlockFile): Promise<ImageFormat> {
  if (file.length < 4) return 'raw';
  const magic = new Uint8Array(4);
  await file.read(0, magic);
  return new DataView(magic.buffer).getUint32(0) === QCOW2_MAGIC ? 'qcow2' : 'raw';
}
