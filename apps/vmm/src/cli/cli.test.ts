import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The built CLI: these tests run what `pnpm vmm` runs (build first: turbo's test depends on build). */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');
const exec = promisify(execFile);

async function vmm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmm-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.concurrent('vmm run (the built CLI)', () => {
  it('with no arguments runs the embedded default and exits 0 with the report', async () => {
    const { code, stdout, stderr } = await vmm(['run']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/virtio-ts model guest: 1 vCPU \(worker threads\), 256 MiB RAM, virtio-pci, split ring/);
    expect(stdout).toMatch(/virtio-blk .*disk\.qcow2 \(qcow2, 64 MiB/);
    expect(stdout).toMatch(/verify {3}disk 0: 16 MiB .* data matches/);
    expect(stdout).toMatch(/bench {4}disk 0: randrw bs=4 KiB iodepth=8 .* IOPS, .*MiB\/s/);
    expect(stdout).toMatch(/latency p50 .* p99 .* p99\.9 /);
    expect(stdout).toMatch(/console {2}echoed 26 bytes/);
    expect(stdout).toMatch(/rng {6}64 KiB of entropy/);
  }, 90_000);

  it('takes a JSON config file, and flags override it; --json prints the report as JSON', async () => {
    const config = join(dir, 'vm.json');
    await writeFile(config, JSON.stringify({ vcpus: 2, transport: 'pci', devices: [{ type: 'blk', size: '4M' }, { type: 'rng' }], workloads: [{ type: 'rng', bytes: 1024 }] }));
    const { code, stdout } = await vmm(['run', '--config', config, '--transport', 'mmio', '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { config: { vcpus: number; transport: string }; results: { type: string }[] };
    expect(report.config.vcpus).toBe(2);
    expect(report.config.transport).toBe('mmio');
    expect(report.results.map((r) => r.type)).toEqual(['rng']);
  }, 60_000);

  it('names the bad field and exits 2 on a bad config, before creating anything', async () => {
    const { code, stdout, stderr } = await vmm(['run', '--blk', 'path=x.img,format=qcow3']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe('vmm: invalid config: Invalid type: Expected ("raw" | "qcow2") but received "qcow3" → at devices.0.format [INVALID_CONFIG]\n');
  });

  it('reports a config file that is not JSON without a stack trace', async () => {
    const config = join(dir, 'broken.json');
    await writeFile(config, '{ "vcpus": ');
    const { code, stderr } = await vmm(['run', '--config', config]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^vmm: config file is not JSON: .* \[INVALID_CONFIG\]/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('ends a failed run with `vmm: <message> [CODE]`, no stack trace, exit 1', async () => {
    const { code, stderr } = await vmm(['run', '--blk', `path=${join(dir, 'missing.qcow2')},format=qcow2`, '--workload', 'verify']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^vmm: devices\.0: .*missing\.qcow2.* \[IMAGE\]\n$/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('--vms 2 runs two guests on switch lan0 that ping and UDP-echo each other (the default workloads), --json per VM', async () => {
    const { code, stdout, stderr } = await vmm(['run', '--vms', '2', '--memory', '32M', '--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { vms: { results: { type: string; peer?: string; received?: number; echoed?: number }[] }[]; switches: { name: string; ports: number }[] };
    expect(report.vms.map((vm) => vm.results.map((r) => [r.type, r.peer, r.received ?? r.echoed]))).toEqual([
      [
        ['ping', '10.0.0.2', 4],
        ['udp-echo', '10.0.0.2', 16],
      ],
      [
        ['ping', '10.0.0.1', 4],
        ['udp-echo', '10.0.0.1', 16],
      ],
    ]);
    expect(report.switches).toMatchObject([{ name: 'lan0', ports: 2 }]);
  }, 90_000);

  it('a multi-VM config file names the bad field of the VM it is in (exit 2); a bad --vms is INVALID_OPTION', async () => {
    const config = join(dir, 'two.json');
    await writeFile(config, JSON.stringify({ vms: [{ devices: [{ type: 'net', backend: 'switch:lan0' }] }, { devices: [{ type: 'net', backend: 'tap:' }] }] }));
    const bad = await vmm(['run', '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^vmm: invalid config: Expected tap:IFNAME .* → at vms\.1\.devices\.0\.backend \[INVALID_CONFIG\]\n$/);
    const vms = await vmm(['run', '--vms', 'many']);
    expect(vms.code).toBe(2);
    expect(vms.stderr).toMatch(/^vmm: --vms: expected a VM count in \[1, 8\] but received "many" \[INVALID_OPTION\]/);
  });
});
