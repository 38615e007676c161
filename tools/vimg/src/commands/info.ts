import type { InfoCommand } from '../cli/parse.js';
import { formatImageInfoHuman, imageInfoToJson, toQemuJson, type ImageInfo } from '../format/image-info.js';
import { pathCombine } from '../image/backing-policy.js';
import type { ImageHost, ImageLayer } from '../image/image-host.js';
import type { CommandContext } from './context.js';

/** `vimg info`: exit 0, or 1 on an error. */
export async function runInfo(command: InfoCommand, context: CommandContext): Promise<number> {
  const chain = await context.host.open(command.filename, { ...(command.format !== undefined ? { format: command.format } : {}), writable: false, backing: command.backingChain });
  try {
    const layers = command.backingChain ? chain.layers : chain.layers.slice(0, 1);
    const infos: ImageInfo[] = [];
    for (const layer of layers) infos.push(await describeLayer(layer, context.host));
    if (command.output === 'json') {
      const json = command.backingChain ? infos.map(imageInfoToJson) : imageInfoToJson(infos[0]!);
      context.io.stdout(`${toQemuJson(json)}\n`);
    } else {
      context.io.stdout(infos.map(formatImageInfoHuman).join('\n'));
    }
    return 0;
  } finally {
    await chain.close();
  }
}

/** Builds qemu-img's ImageInfo for one layer from the driver's info and the host. */
export async function describeLayer(layer: ImageLayer, host: ImageHost): Promise<ImageInfo> {
  const info = await layer.driver.info();
  const actualSize = (await host.actualSize(layer.path)) ?? info.actualSize;
  const snapshots = layer.format === 'qcow2' ? await host.listSnapshots({ layers: [layer], top: layer.driver, close: () => Promise.resolve() }) : [];
  const backing = info.backingFilename;
  const specific = info.formatSpecific;
  return {
    filename: layer.filename,
    format: info.format,
    virtualSize: info.virtualSize,
    ...(actualSize !== undefined ? { actualSize } : {}),
    ...(info.clusterSize !== undefined ? { clusterSize: info.clusterSize } : {}),
    dirtyFlag: info.dirty ?? false,
    ...(backing !== undefined && backing !== '' ? { backingFilename: backing, fullBackingFilename: pathCombine(layer.filename, backing) } : {}),
    ...(info.backingFilenameFormat !== undefined ? { backingFilenameFormat: info.backingFilenameFormat } : {}),
    ...(snapshots.length > 0 ? { snapshots } : {}),
    ...(specific !== undefined ? { formatSpecific: { type: info.format, data: qemuFormatSpecific(info.format, specific) } } : {}),
  };
}

/**
 * The format-specific fields qemu-img 7.2 prints: for a compat 0.10 qcow2 image only compat,
 * compression-type and refcount-bits (qcow2_get_specific_info fills the rest for v3 only).
 */
export function qemuFormatSpecific(format: string, data: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  if (format !== 'qcow2' || data['compat'] !== '0.10') return data;
  return { compat: '0.10', 'compression-type': data['compression-type'] ?? 'zlib', 'refcount-bits': data['refcount-bits'] };
}
