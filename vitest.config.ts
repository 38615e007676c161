import { execFileSync } from 'node:child_process';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig, mergeConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { sharedConfig } from './vitest.shared.js';

/**
 * Every package's own project, plus a `browser` project that runs the pure layers' tests in
 * Debian's headless Chromium (the pure layers must run in a browser; ARCHITECTURE.md).
 * Without Chromium the browser project is left out with a visible notice; under CI=true it is required.
 */
function chromiumPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const pureLayerTests = ['packages/memory/src/**/*.test.ts', 'packages/ring/src/**/*.test.ts', 'packages/device/src/**/*.test.ts', 'packages/pci/src/**/*.test.ts', 'packages/backends/src/**/*.test.ts', 'packages/drivers/src/**/*.test.ts'];
const executablePath = chromiumPath();
const browserProject: TestProjectInlineConfiguration[] = [];
if (executablePath !== undefined) {
  browserProject.push(mergeConfig(sharedConfig, {
    // Cross-origin isolation, so that SharedArrayBuffer exists in the page as it would in a VMM's page.
    server: { headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } },
    test: {
      name: 'browser',
      include: pureLayerTests,
      // Tests that need Node (worker_threads, child_process, files) are named *.node.test.ts.
      exclude: ['**/*.node.test.ts', '**/node_modules/**'],
      browser: {
        enabled: true,
        headless: true,
        provider: playwright({
          launchOptions: {
            executablePath,
            args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
          },
        }),
        instances: [{ browser: 'chromium' }],
      },
    },
  }) as TestProjectInlineConfiguration);
} else if (process.env.CI === 'true') {
  throw new Error('CI=true but chromium is not installed: the browser run of the pure layers is required (scripts/install-peers.sh installs it)');
} else {
  console.warn('vitest: chromium not found, skipping the browser run of the pure layers (apt-get install chromium)');
}

export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'apps/*/vitest.config.ts', 'tools/*/vitest.config.ts', ...browserProject],
  },
});
