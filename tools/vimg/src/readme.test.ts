import { rmSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { tempDir } from './testing/interop-support.js';
import { NodeImageHost, runVimg } from './index.js';

const tmp = tempDir('vimg-readme-');
afterAll(() => tmp.remove());

it('README example: create, info --output=json, check', async () => {
  const previous = process.cwd();
  process.chdir(tmp.dir);
  let out = '';
  const io = { stdout: (text: string) => (out += text), stderr: (text: string) => void process.stderr.write(text) };
  const host = new NodeImageHost();
  await runVimg(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=64k', 'disk.qcow2', '64M'], io, host);
  await runVimg(['info', '--output=json', 'disk.qcow2'], io, host);
  const info = JSON.parse(out) as { 'virtual-size': number; 'format-specific': { data: { compat: string } } };
  expect([info['virtual-size'], info['format-specific'].data.compat]).toEqual([67108864, '1.1']);
  out = '';
  const status = await runVimg(['check', 'disk.qcow2'], io, host);
  expect(status).toBe(0);
  expect(out).toContain('No errors were found on the image.');
  rmSync(tmp.path('disk.qcow2'));
  process.chdir(previous);
});
