import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseVmConfig } from '../config/schema.js';
import type { ServeDeviceSpec } from '../serve/serve-options.js';
import { ExitStatusScanner } from './exit-status.js';
import { findProgram } from './find-program.js';
import { qemuArgs } from './qemu-args.js';
import { planQemuDevices } from './serve-specs.js';

function scan(chunks: readonly string[]): number | null {
  const scanner = new ExitStatusScanner();
  for (const chunk of chunks) scanner.push(chunk);
  return scanner.status;
}

/** Splits `text` at the given cut points (any order, any duplicates). */
function split(text: string, cuts: readonly number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(text.slice(start, p));
    start = p;
  }
  chunks.push(text.slice(start));
  return chunks;
}

describe('ExitStatusScanner (the guest console is untrusted and arrives in arbitrary chunks)', () => {
  it('finds the VT-EXIT line however the console is chunked', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }).map((s) => s.replace(/VT-EXIT/g, '')), fc.integer({ min: 0, max: 255 }), fc.string({ maxLength: 50 }), fc.array(fc.nat(), { maxLength: 20 }), (before, status, after, cuts) => {
        const text = `${before}\r\nVT-EXIT=${status}\r\n${after}`;
        expect(scan(split(text, cuts))).toBe(status);
      }),
      { numRuns: 300 },
    );
  });

  it('ignores VT-EXIT that does not start a line, and reports the first one', () => {
    expect(scan(['echo VT-EXIT=4\n'])).toBeNull();
    expect(scan(['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'VT-EXIT=4\n'])).toBeNull();
    expect(scan(['a', 'VT-EX', 'IT=4\n'])).toBeNull();
    expect(scan(['VT-EXIT=7\n', 'VT-EXIT=0\n'])).toBe(7);
    expect(scan(['boot\n', 'VT-EXIT=3'])).toBeNull(); // unfinished line: not yet a report
    expect(scan(['VT-EXIT=999\n'])).toBe(255);
  });
});

describe('planQemuDevices: the VM config as vmm serve specs', () => {
  const config = parseVmConfig({
    engine: 'qemu',
    queueSize: 128,
    devices: [
      { type: 'blk', path: '/img/a.qcow2', format: 'qcow2', queues: 2, readOnly: true },
      { type: 'rng' },
      { type: 'console' },
      { type: 'blk', size: '8M', cache: 'none' },
      { type: 'scsi', queues: 2, luns: [{ path: '/img/s.raw' }, { size: '4M', format: 'qcow2', readOnly: true }, { target: 1, path: '/img/t.raw' }] },
      { type: 'net', backend: 'tap:vt0', mac: '52:54:00:AA:00:01', queues: 2, mtu: 9000, ip: '10.1.0.5/24' },
      { type: 'net', backend: 'switch:lan' },
    ],
  });
  const plan = planQemuDevices(config, '/run/x');

  it('scsi keeps its queues and every LUN at its target:lun (a memory LUN becomes a scratch image); net on a TAP keeps MAC, queue pairs and MTU', () => {
    expect(plan.specs[3]).toEqual({
      kind: 'scsi', id: 'scsi0', socket: '/run/x/scsi0.sock', queues: 2, queueSize: 128, packed: true,
      luns: [
        { target: 0, lun: 0, path: '/img/s.raw', format: 'raw', readOnly: false, serial: 'scsi0-0-0' },
        { target: 0, lun: 1, path: '/run/x/scsi0-0-1.qcow2', format: 'qcow2', readOnly: true, serial: 'scsi0-0-1' },
        { target: 1, lun: 0, path: '/img/t.raw', format: 'raw', readOnly: false, serial: 'scsi0-1-0' },
      ],
    });
    expect(plan.scratchImages).toContainEqual({ path: '/run/x/scsi0-0-1.qcow2', format: 'qcow2', size: 4 * 2 ** 20 });
    expect(plan.specs[4]).toEqual({ kind: 'net', id: 'net0', tap: 'vt0', socket: '/run/x/net0.sock', queues: 2, queueSize: 256, mac: '52:54:00:aa:00:01', mtu: 9000, packed: true });
    expect(plan.specs).toHaveLength(5);
  });

  it('says why a net device on a switch is not attached, and that a model-guest ip= is not applied', () => {
    expect(plan.notes.some((n) => n.startsWith('devices.6:') && n.includes('TAP only'))).toBe(true);
    expect(plan.notes.some((n) => n.startsWith('devices.5:') && n.includes('ip=10.1.0.5/24'))).toBe(true);
  });

  it('keeps each disk\'s image, format, read-only flag and queues; a memory disk becomes a scratch image', () => {
    expect(plan.specs.slice(0, 3)).toEqual([
      { kind: 'blk', id: 'blk0', path: '/img/a.qcow2', format: 'qcow2', socket: '/run/x/blk0.sock', readOnly: true, queues: 2, queueSize: 128, serial: 'blk0', packed: true },
      { kind: 'rng', id: 'rng0', socket: '/run/x/rng0.sock', rate: 0 },
      { kind: 'blk', id: 'blk1', path: '/run/x/blk1.raw', format: 'raw', socket: '/run/x/blk1.sock', readOnly: false, queues: 1, queueSize: 128, serial: 'blk1', packed: true },
    ]);
    expect(plan.scratchImages).toContainEqual({ path: '/run/x/blk1.raw', format: 'raw', size: 8 * 2 ** 20 });
  });

  it('says why the console is not attached (QEMU has no vhost-user-console) and that cache= is not honoured', () => {
    expect(plan.notes.some((n) => n.startsWith('devices.2:') && n.includes('no vhost-user-console'))).toBe(true);
    expect(plan.notes.some((n) => n.startsWith('devices.3:') && n.includes('cache=none'))).toBe(true);
  });
});

describe('qemuArgs', () => {
  const devices: ServeDeviceSpec[] = [
    { kind: 'blk', id: 'blk0', path: '/i', format: 'raw', socket: '/s/blk0.sock', readOnly: false, queues: 2, queueSize: 256, serial: 'blk0', packed: true },
    { kind: 'rng', id: 'rng0', socket: '/s/rng0.sock', rate: 0 },
    { kind: 'scsi', id: 'scsi0', socket: '/s/scsi0.sock', queues: 2, queueSize: 128, packed: true, luns: [{ target: 0, lun: 0, path: '/j', format: 'qcow2', readOnly: false, serial: 'scsi0' }] },
    { kind: 'net', id: 'net0', tap: 'vt0', socket: '/s/net0.sock', queues: 2, queueSize: 256, mac: '52:54:00:00:00:07', mtu: 1500, packed: true },
  ];
  const args = qemuArgs({ kernel: '/k', initrd: '/i.cpio', append: 'quiet', memory: 300 * 2 ** 20 + 1, vcpus: 2, devices, scriptFile: '/s/script.sh' });
  const after = (flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

  it('shares guest RAM as a memfd of exactly -m (vhost-user back-ends map it), rounded up to MiB', () => {
    expect(after('-m')).toEqual(['301M']);
    expect(after('-object')).toEqual(['memory-backend-memfd,id=mem,size=301M,share=on']);
    expect(after('-numa')).toEqual(['node,memdev=mem']);
  });

  it('attaches every device through its socket, blk, scsi and net with their queue counts', () => {
    expect(after('-chardev')).toEqual(['socket,id=blk0,path=/s/blk0.sock', 'socket,id=rng0,path=/s/rng0.sock', 'socket,id=scsi0,path=/s/scsi0.sock', 'socket,id=net0,path=/s/net0.sock']);
    expect(after('-device')).toEqual([
      'vhost-user-blk-pci,chardev=blk0,num-queues=2',
      'vhost-user-rng-pci,chardev=rng0',
      'vhost-user-scsi-pci,chardev=scsi0,num_queues=2,virtqueue_size=128',
      'virtio-net-pci,netdev=net0,mac=52:54:00:00:00:07,mq=on,vectors=0',
    ]);
    expect(after('-netdev')).toEqual(['vhost-user,id=net0,chardev=net0,queues=2']);
  });

  it('runs TCG with the serial console on stdio, the kernel, initrd, command line and script', () => {
    expect(after('-machine')).toEqual(['pc,accel=tcg']);
    expect(after('-serial')).toEqual(['stdio']);
    expect(after('-smp')).toEqual(['2']);
    expect(after('-kernel')).toEqual(['/k']);
    expect(after('-initrd')).toEqual(['/i.cpio']);
    expect(after('-append')).toEqual(['console=ttyS0 panic=-1 loglevel=4 rdinit=/init no_timer_check quiet']);
    expect(after('-fw_cfg')).toEqual(['name=opt/virtio-ts/script,file=/s/script.sh']);
  });
});

describe('findProgram', () => {
  it('finds an executable on PATH and nothing where there is none', () => {
    expect(findProgram('node', `/nonexistent:${process.execPath.replace(/\/node$/, '')}`)).toBe(process.execPath);
    expect(findProgram('qemu-system-x86_64', '/nonexistent')).toBeUndefined();
    expect(findProgram('/nonexistent/qemu')).toBeUndefined();
  });
});
