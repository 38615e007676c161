import { describe, expect, it } from 'vitest';
import { VmmError } from '../errors.js';
import { parseBlkOption, parseNetOption, parseRngOption, parseScsiOption, parseServeOptions } from './serve-options.js';

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (error) {
    return VmmError.isInstance(error) ? error.code : 'not a VmmError';
  }
  return undefined;
};

describe('vmm serve options', () => {
  it('--blk: defaults (raw, one queue, serial = id, packed offered)', () => {
    expect(parseBlkOption('id=d0,path=/i,socket=/s')).toEqual({ kind: 'blk', id: 'd0', path: '/i', format: 'raw', socket: '/s', readOnly: false, queues: 1, queueSize: 256, serial: 'd0', packed: true });
  });

  it('--scsi: every key, and the same defaults as --blk with queue-size 128', () => {
    expect(parseScsiOption('id=s0,path=/i.qcow2,format=qcow2,socket=/s,readonly=on,queues=2,serial=SER-1,queue-size=64,packed=off')).toEqual({
      kind: 'scsi', id: 's0', socket: '/s', queues: 2, queueSize: 64, packed: false,
      luns: [{ target: 0, lun: 0, path: '/i.qcow2', format: 'qcow2', readOnly: true, serial: 'SER-1' }],
    });
    expect(parseScsiOption('id=s1,path=/i,socket=/s')).toMatchObject({ queues: 1, queueSize: 128, packed: true, luns: [{ format: 'raw', readOnly: false, serial: 's1' }] });
  });

  it('--scsi: rejects what the adapter cannot serve (bad format, queue size, serial, unknown key, missing path)', () => {
    for (const bad of [
      'id=s0,path=/i,socket=/s,format=vmdk',
      'id=s0,path=/i,socket=/s,queue-size=100',
      'id=s0,path=/i,socket=/s,queues=0',
      `id=s0,path=/i,socket=/s,serial=${'x'.repeat(37)}`,
      'id=s0,path=/i,socket=/s,serial=caf\u00e9',
      'id=s0,path=/i,socket=/s,wwn=1',
      'id=s0,socket=/s',
    ]) {
      expect(codeOf(() => parseScsiOption(bad)), bad).toBe('INVALID_OPTION');
    }
  });

  it('--net: a TAP name, queue pairs, the guest MAC (lower-cased), MTU; defaults one pair, QEMU\'s first MAC, 1500', () => {
    expect(parseNetOption('id=n0,tap=vt-tap0,socket=/n,queues=2,mac=52:54:00:AB:CD:EF,mtu=9000')).toEqual({
      kind: 'net', id: 'n0', tap: 'vt-tap0', socket: '/n', queues: 2, queueSize: 256, mac: '52:54:00:ab:cd:ef', mtu: 9000, packed: true,
    });
    expect(parseNetOption('id=n1,tap=t,socket=/n')).toMatchObject({ queues: 1, mac: '52:54:00:12:34:56', mtu: 1500 });
  });

  it('--net: rejects a name the kernel would refuse, a group MAC, an MTU outside 68..65535, a missing tap', () => {
    for (const bad of [
      'id=n0,tap=a-name-of-16-byte,socket=/n',
      'id=n0,tap=a/b,socket=/n',
      'id=n0,tap=t,socket=/n,mac=01:00:5e:00:00:01',
      'id=n0,tap=t,socket=/n,mac=52:54:00:12:34',
      'id=n0,tap=t,socket=/n,mtu=67',
      'id=n0,tap=t,socket=/n,queues=0',
      'id=n0,socket=/n',
    ]) {
      expect(codeOf(() => parseNetOption(bad)), bad).toBe('INVALID_OPTION');
    }
    expect(codeOf(() => parseServeOptions({ net: ['id=a,tap=t,socket=/1', 'id=b,tap=t,socket=/2'] }))).toBe('INVALID_OPTION');
  });

  it('--rng: rate is bytes per second', () => {
    expect(parseRngOption('id=r0,socket=/r,rate=1024')).toEqual({ kind: 'rng', id: 'r0', socket: '/r', rate: 1024 });
  });

  it('ids and sockets are unique across all device kinds; at least one device', () => {
    expect(parseServeOptions({ blk: ['id=a,path=/i,socket=/1'], scsi: ['id=b,path=/j,socket=/2'], rng: ['id=c,socket=/3'], net: ['id=d,tap=t,socket=/4'] }).map((s) => s.kind)).toEqual(['blk', 'scsi', 'net', 'rng']);
    expect(codeOf(() => parseServeOptions({ blk: ['id=a,path=/i,socket=/1'], scsi: ['id=a,path=/j,socket=/2'] }))).toBe('INVALID_OPTION');
    expect(codeOf(() => parseServeOptions({ blk: ['id=a,path=/i,socket=/1'], scsi: ['id=b,path=/j,socket=/1'] }))).toBe('INVALID_OPTION');
    expect(codeOf(() => parseServeOptions({}))).toBe('INVALID_OPTION');
  });
});
