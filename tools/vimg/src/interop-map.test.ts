/**
 * `vimg map --output=json` against `qemu-img map --output=json` on backing chains, every field
 * (start, length, depth, present, zero, data, offset): zero clusters at the bottom of the chain
 * and in the overlay, ranges unallocated everywhere, a backing file shorter than the overlay, and
 * raw base images (with holes, which the Node adapter finds with SEEK_DATA/SEEK_HOLE).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mixedBytes, qemuSkipReason, runOk, tempDir, vimgOk, writeBytes } from './testing/interop-support.js';

const skip = qemuSkipReason();

describe.skipIf(skip !== undefined)('vimg map agrees with qemu-img map on backing chains', () => {
  let tmp: ReturnType<typeof tempDir>;
  const q = (...args: string[]): string => runOk('qemu-img', args, tmp.dir);
  const io = (image: string, format: string, ...commands: string[]): void => void runOk('qemu-io', ['-f', format, ...commands.flatMap((c) => ['-c', c]), image], tmp.dir);

  async function expectSameMap(image: string): Promise<void> {
    const theirs = JSON.parse(q('map', '--output=json', image)) as unknown[];
    const ours = JSON.parse(await vimgOk('map', '--output=json', tmp.path(image))) as unknown[];
    expect(ours).toEqual(theirs);
  }

  beforeAll(() => {
    tmp = tempDir('vimg-map-');
    writeBytes(tmp.path('data.bin'), mixedBytes(1 << 20, 5));
  });
  afterAll(() => tmp.remove());

  it('a zero cluster at the bottom of the chain is present (qcow2 base written with write -z), under an overlay', async () => {
    q('create', '-q', '-f', 'qcow2', 'base.qcow2', '1M');
    io('base.qcow2', 'qcow2', 'write -P 0x11 0 64k', 'write -z 128k 64k', 'write -z 320k 64k', 'write -P 0x12 448k 64k');
    await expectSameMap('base.qcow2');
    q('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'top.qcow2');
    await expectSameMap('top.qcow2');
  });

  it('a zero cluster in the overlay over data in the base; data in the overlay; unallocated everywhere; an overlay longer than its base', async () => {
    q('create', '-q', '-f', 'qcow2', 'base2.qcow2', '1M');
    io('base2.qcow2', 'qcow2', 'write -P 0x21 0 256k');
    q('create', '-q', '-f', 'qcow2', '-b', 'base2.qcow2', '-F', 'qcow2', 'top2.qcow2', '2M');
    io('top2.qcow2', 'qcow2', 'write -z 64k 64k', 'write -P 0x22 192k 128k', 'write -z 1536k 64k', 'write -P 0x23 1792k 64k');
    await expectSameMap('top2.qcow2');
    // Three deep: the middle layer zeroes what the base holds, the top is empty.
    q('create', '-q', '-f', 'qcow2', '-b', 'top2.qcow2', '-F', 'qcow2', 'top3.qcow2', '2M');
    await expectSameMap('top3.qcow2');
  });

  it('a raw base with data and holes under a qcow2 overlay', async () => {
    q('create', '-q', '-f', 'raw', 'base.raw', '1M');
    io('base.raw', 'raw', 'write -s data.bin 0 64k', 'write -s data.bin 512k 128k');
    q('create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'top-raw.qcow2', '1M');
    io('top-raw.qcow2', 'qcow2', 'write -z 0 64k', 'write -P 0x31 256k 64k');
    await expectSameMap('top-raw.qcow2');
  });
});
