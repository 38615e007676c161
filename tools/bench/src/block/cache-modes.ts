/**
 * Host cache modes of the request rows (`-t` of both tools): `writeback` goes through the page
 * cache, `none` opens the image with O_DIRECT (vimg's NodeFile bounces unaligned requests through
 * page-aligned buffers, as QEMU does). `VIMG_BENCH_CACHE=writeback,none` picks a subset.
 */
export const BENCH_CACHE_MODES = ['writeback', 'none'] as const;

export type BenchCacheMode = (typeof BENCH_CACHE_MODES)[number];

/** The cache modes to run: all of them, or those named in `value` (comma-separated). */
export function benchCacheModes(value: string | undefined): readonly BenchCacheMode[] {
  if (value === undefined || value.trim() === '') return BENCH_CACHE_MODES;
  const wanted = value.split(',').map((v) => v.trim());
  for (const mode of wanted) {
    if (!(BENCH_CACHE_MODES as readonly string[]).includes(mode)) throw new Error(`VIMG_BENCH_CACHE: unknown cache mode '${mode}' (expected ${BENCH_CACHE_MODES.join(', ')})`);
  }
  return BENCH_CACHE_MODES.filter((m) => wanted.includes(m));
}
