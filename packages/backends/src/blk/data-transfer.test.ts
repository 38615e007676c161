import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../testing/bytes.js';
import { MemoryDisk } from '../testing/memory-disk.js';
import { BOUNCE_LIMIT, planTransfer, readInto, writeFrom } from './data-transfer.js';

/** Views of the given lengths over one backing buffer, in order. */
function viewsOf(lengths: readonly number[]): { backing: Uint8Array; views: Uint8Array[] } {
  const total = lengths.reduce((a, b) => a + b, 0);
  const backing = new Uint8Array(total);
  const views: Uint8Array[] = [];
  let at = 0;
  for (const n of lengths) {
    views.push(backing.subarray(at, at + n));
    at += n;
  }
  return { backing, views };
}

const alignedLengths = fc
  .tuple(fc.constantFrom(512, 4096), fc.array(fc.oneof(fc.integer({ min: 0, max: 700 }), fc.constantFrom(512, 4096, 8192)), { minLength: 1, maxLength: 30 }))
  .map(([alignment, lengths]) => {
    const total = lengths.reduce((a, b) => a + b, 0);
    const pad = (alignment - (total % alignment)) % alignment;
    return { alignment, lengths: pad > 0 ? [...lengths, pad] : lengths };
  });

describe('blk scatter-gather (zero-copy where aligned, bounded bounce elsewhere)', () => {
  it('property: steps cover the views in order, every step aligned, bounces bounded, direct steps are whole views', () => {
    fc.assert(
      fc.property(alignedLengths, fc.nat({ max: 64 }), ({ alignment, lengths }, offsetBlocks) => {
        const { views } = viewsOf(lengths);
        const offset = offsetBlocks * alignment;
        const steps = planTransfer(offset, views, alignment);
        let position = offset;
        for (const step of steps) {
          expect(step.offset).toBe(position);
          expect(step.offset % alignment).toBe(0);
          const length = step.kind === 'direct' ? step.view.length : step.length;
          expect(length % alignment === 0 || position + length === offset + lengths.reduce((a, b) => a + b, 0)).toBe(true);
          if (step.kind === 'bounce') {
            expect(step.length).toBeLessThanOrEqual(BOUNCE_LIMIT);
            expect(step.pieces.reduce((a, p) => a + p.length, 0)).toBe(step.length);
          } else {
            expect(views).toContain(step.view);
          }
          position += length;
        }
        expect(position - offset).toBe(lengths.reduce((a, b) => a + b, 0));
      }),
      { numRuns: 300 },
    );
  });

  it('property: readInto then writeFrom through any split is byte-exact against the disk', async () => {
    await fc.assert(
      fc.asyncProperty(alignedLengths, async ({ alignment, lengths }) => {
        const total = lengths.reduce((a, b) => a + b, 0);
        const disk = new MemoryDisk({ size: total + 8192, requestAlignment: alignment });
        for (let i = 0; i < disk.bytes.length; i++) disk.bytes[i] = (i * 13) & 0xff;
        const { backing, views } = viewsOf(lengths);
        await readInto(disk, 4096, views, alignment);
        expect(equalBytes(backing, disk.bytes.subarray(4096, 4096 + total))).toBe(true);
        backing.reverse();
        await writeFrom(disk, 4096, views, alignment);
        expect(equalBytes(disk.bytes.subarray(4096, 4096 + total), backing)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('a bounce never exceeds BOUNCE_LIMIT even for a huge run of unaligned views', () => {
    const lengths = Array.from({ length: 200 }, () => 4097);
    const total = lengths.reduce((a, b) => a + b, 0);
    lengths.push((512 - (total % 512)) % 512);
    const { views } = viewsOf(lengths);
    const steps = planTransfer(0, views, 512);
    expect(steps.every((s) => s.kind === 'direct' || s.length <= BOUNCE_LIMIT)).toBe(true);
    expect(steps.length).toBeGreaterThan(1);
  });
});
