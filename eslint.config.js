// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Packages that must run in a browser: nothing from `node:` (see ARCHITECTURE.md). */
const pureLayers = ['memory', 'ring', 'device', 'pci', 'backends', 'drivers'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.cache/**', '**/*.config.ts', 'vitest.shared.ts', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/only-throw-error': 'error',
    },
  },
  {
    files: [
      ...pureLayers.map((p) => `packages/${p}/src/**/*.ts`),
      'packages/block/src/**/*.ts',
    ],
    ignores: ['packages/block/src/node/**', 'packages/backends/src/node/**', '**/*.test.ts', '**/testing/node*.ts', '**/*.worker.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*'], message: 'Pure layers must run in a browser: put Node I/O behind a contract in a host adapter.' }] },
      ],
    },
  },
  {
    files: ['**/*.test.ts', '**/testing/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
);
