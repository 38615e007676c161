import { defineConfig } from 'vitest/config';

/**
 * Shared vitest settings for every package. Tests resolve workspace packages to their
 * TypeScript sources through the `@virtio-ts/source` export condition, so a change in a
 * lower layer is seen by the layers above it without a rebuild.
 */
export const sharedConfig = defineConfig({
  resolve: { conditions: ['@virtio-ts/source'] },
  ssr: { resolve: { conditions: ['@virtio-ts/source'] } },
  test: {
    include: ['src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
