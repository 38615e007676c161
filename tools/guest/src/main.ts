#!/usr/bin/env node
import { buildGuest } from './build.js';

// `pnpm guest` / `virtio-ts-guest [--force]`: build (or find cached) the test guest and print its paths.
const force = process.argv.includes('--force');
buildGuest({ force, log: (line) => console.error(`guest: ${line}`) })
  .then((image) => console.log(JSON.stringify(image, null, 2)))
  .catch((error: unknown) => {
    console.error(`guest: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
