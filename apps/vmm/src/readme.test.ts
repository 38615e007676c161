import { expect, it } from 'vitest';
import { formatGroupReport, formatReport, parseVmConfig, parseVmGroup, runVm, runVmGroup, VmmError } from './index.js';

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

it('README two-guest example runs', async () => {
  const lines: string[] = [];
  const console = { log: (text: string) => lines.push(text) };
  // --- README example: virtio-scsi, virtio-net and several VMs (keep in sync) ---
  const vm = {
    dispatch: 'inline',
    memory: '32M',
    devices: [{ type: 'net', backend: 'switch:lan0' }], // vm0 is 10.0.0.1, vm1 10.0.0.2
    workloads: [{ type: 'ping', count: 3 }, { type: 'udp-echo', count: 8, size: 1000 }], // peer: the other VM
  };
  const report = await runVmGroup(parseVmGroup({ vms: [vm, vm] }));
  console.log(formatGroupReport(report)); // ... ping net 0 → 10.0.0.2: 3 echo requests of 56 bytes, 3 replies (0% loss) ...
  // --- end ---
  expect(lines[0]).toMatch(/ping {5}net 0 → 10\.0\.0\.2: 3 echo requests of 56 bytes, 3 replies \(0% loss\)/);
  expect(lines[0]).toMatch(/udp-echo net 0 → 10\.0\.0\.1:7: 8 datagrams of 1000 bytes, 8 echoed intact/);
});
