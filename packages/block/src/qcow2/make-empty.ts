/**
 * Making a qcow2 image empty (QEMU bdrv_make_empty, used by `qemu-img commit`): every active L2
 * entry becomes unallocated, so reads fall through to the backing file again, and the data
 * clusters it referenced are freed. L2 tables stay (zeroed), so the L1 table is unchanged.
 *
 * Crash safety: the zeroed L2 tables are written and flushed before the data clusters' refcounts
 * drop (Qcow2Image.freeClustersLater, stage 4 of flushMetadata): a crash leaves leaks at worst.
 */
import { BlockError } from '../errors.js';
import type { Qcow2Image } from './qcow2-image.js';
import type { Qcow2ImageHolder } from './snapshot.js';

/**
 * Unallocates every cluster of the active L1 table and frees the data clusters. Refuses
 * (UNSUPPORTED) an image with internal snapshots, whose clusters are shared.
 */
export async function makeEmptyQcow2(holder: Qcow2ImageHolder): Promise<void> {
  const image: Qcow2Image = 'image' in holder ? holder.image : holder;
  await image.lock.exclusive(async () => {
    image.checkWritable('makeEmpty');
    if (image.header.nbSnapshots > 0) {
      throw new BlockError('UNSUPPORTED', 'emptying an image with internal snapshots is not supported', { op: 'makeEmpty' });
    }
    await image.markDirtyIfLazy();
    const cs = image.clusterSize;
    for (let i = 0; i < image.l1Size; i++) {
      const l1 = image.l1Entry(i);
      if (l1.offset === 0) continue;
      const table = await image.readL2(l1.offset);
      let changed = false;
      for (let j = 0; j < image.l2Entries; j++) {
        if (image.l2EntryIsEmpty(table, j)) continue;
        const entry = image.l2Entry(table, j);
        if (entry.kind === 'compressed') image.freeClustersLater(entry.offset, entry.compressedSize);
        else if (entry.offset !== 0) image.freeClustersLater(entry.offset, cs);
        table.bytes.fill(0, j * image.l2EntryBytes, (j + 1) * image.l2EntryBytes);
        changed = true;
      }
      if (changed) image.l2Cache.markDirty(table);
      await image.afterMetadataOperation();
    }
    await image.flushMetadata();
    await image.flushMetadata();
    await image.file.flush();
  });
}
