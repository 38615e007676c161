#!/usr/bin/env node
import { NodeImageHost } from './image/node-image-host.js';
import { runVimg } from './run.js';

/** The `vimg` executable: runs the command line and exits with its status. */
const status = await runVimg(
  process.argv.slice(2),
  {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  },
  () => Promise.resolve(new NodeImageHost()),
);
process.exitCode = status;
