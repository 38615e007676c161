// Runs every vitest project once, then prints the plain "N passed, N failed, N skipped" line
// that CI reads as the closing line.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

mkdirSync('.cache', { recursive: true });
const report = '.cache/vitest-report.json';
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const run = spawnSync('pnpm', ['exec', ...args], { stdio: 'inherit' });
const summary = spawnSync(process.execPath, ['scripts/test-summary.mjs', report], { stdio: 'inherit' });
process.exit(run.status !== 0 ? (run.status ?? 1) : (summary.status ?? 1));
