/**
 * A tiny test-only {@link Qcow2Codec}: run-length encoding. Real images use the deflate/zstd
 * codecs; this one lets the engine's compressed-cluster paths be tested without them.
 */
import { BlockError } from '../errors.js';
import type { CompressionType, Qcow2Codec } from './codec.js';

export function testCodec(type: CompressionType): Qcow2Codec {
  return {
    type,
    compress(cluster: Uint8Array): Uint8Array | null {
      const out: number[] = [];
      for (let i = 0; i < cluster.length; ) {
        let run = 1;
        while (run < 255 && i + run < cluster.length && cluster[i + run] === cluster[i]) run++;
        out.push(run, cluster[i]!);
        i += run;
        if (out.length >= cluster.length) return null;
      }
      return Uint8Array.from(out);
    },
    decompress(input: Uint8Array, clusterSize: number): Uint8Array {
      const out = new Uint8Array(clusterSize);
      let o = 0;
      for (let i = 0; o < clusterSize; i += 2) {
        if (i + 1 >= input.length) throw new BlockError('CORRUPT_IMAGE', 'test codec: stream ends short');
        const run = input[i]!;
        if (run === 0 || o + run > clusterSize) throw new BlockError('CORRUPT_IMAGE', 'test codec: bad run');
        out.fill(input[i + 1]!, o, o + run);
        o += run;
      }
      return out;
    },
  };
}
