/**
 * Crash-injection writer (run as a child process on the built packages): opens a qcow2 image with
 * @virtio-ts/block and writes forever, logging each request before it is issued and each
 * completed flush after it resolves, until the test kills it with SIGKILL.
 *
 * Usage: node dist/testing/crash-writer.js IMAGE SEED
 */
import { writeSync } from 'node:fs';
import { Qcow2Driver } from '@virtio-ts/block';
import { createNodeDeflateCodec, NodeFile } from '@virtio-ts/block/node';
import { crashPrng, writePattern } from './crash-pattern.js';

const [path, seedText] = process.argv.slice(2);
if (path === undefined || seedText === undefined) {
  process.stderr.write('usage: crash-writer IMAGE SEED\n');
  process.exit(2);
}
const log = (line: string): void => void writeSync(1, `${line}\n`);
const random = crashPrng(Number(seedText));
const disk = await Qcow2Driver.open(await NodeFile.open(path), { codecs: { deflate: createNodeDeflateCodec() } });
const size = disk.length;
log('READY');
for (let seq = 0; ; seq += 1) {
  const length = 1 + Math.floor(random() * (random() < 0.6 ? 8192 : 131072));
  const offset = Math.floor(random() * (size - length));
  if (random() < 0.85) {
    log(`W ${seq} ${offset} ${length}`);
    await disk.write(offset, writePattern(seq, length));
  } else {
    log(`Z ${seq} ${offset} ${length}`);
    await disk.writeZeroes(offset, length, { mayUnmap: true });
  }
  if (seq % 8 === 7) {
    await disk.flush();
    log(`F ${seq + 1}`);
  }
}
