import { expect, it } from 'vitest';
import { formatReport, parseVmConfig, runVm, VmmError } from './index.js';

it('README example runs', async () => {
  const lines: string[] = [];
  const log = (text: string) => lines.push(text);
  // --- README example (keep in sync) ---
  const config = parseVmConfig({
    transport: 'mmio',
    ring: 'packed',
    dispatch: 'inline', // 'workers' (the default) runs each vCPU in a worker thread
    devices: [{ type: 'blk', size: '8M', format: 'qcow2' }, { type: 'rng' }],
    workloads: [
      { type: 'verify', size: '1M' },
      { type: 'bench', rw: 'randread', bs: '4k', iodepth: 8, runtime: '200ms' },
      { type: 'rng', bytes: 4096 },
    ],
  });
  const report = await runVm(config);
  log(formatReport(report));
  try {
    parseVmConfig({ devices: [{ type: 'blk', path: 'a.img', format: 'qcow3' }] });
  } catch (error) {
    if (VmmError.isInstance(error)) log(error.message); // ... received "qcow3" → at devices.0.format [INVALID_CONFIG]
  }
  // --- end ---
  expect(lines[0]).toMatch(/verify {3}disk 0: 1 MiB .* data matches/);
  expect(lines[1]).toContain('received "qcow3" → at devices.0.format [INVALID_CONFIG]');
});
