import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VmmError } from '../errors.js';
import { configFromFlags, type ConfigFlags } from './flags.js';
import { guestDisks, parseVmConfig } from './schema.js';

function errorOf(input: unknown): VmmError {
  try {
    parseVmConfig(input);
  } catch (error) {
    if (VmmError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

describe('parseVmConfig', () => {
  it('fills every default for an empty config', () => {
    const config = parseVmConfig({});
    expect(config).toMatchObject({ memory: 256 * 2 ** 20, vcpus: 1, transport: 'pci', ring: 'split', eventIdx: true, indirect: true, dispatch: 'workers' });
    expect(config.devices).toEqual([]);
  });

  const disk = { type: 'blk', path: 'a.img' };
  const table: [string, unknown, string, string][] = [
    ['format qcow3', { devices: [{ ...disk, format: 'qcow3' }] }, 'devices.0.format', 'Expected ("raw" | "qcow2") but received "qcow3" → at devices.0.format'],
    ['unknown device', { devices: [{ type: 'gpu' }] }, 'devices.0.type', 'received "gpu"'],
    ['scsi without LUNs', { devices: [{ type: 'scsi', luns: [] }] }, 'devices.0.luns', 'Expected at least one LUN'],
    ['scsi LUN list missing', { devices: [{ type: 'scsi' }] }, 'devices.0.luns', 'Expected "luns" but received undefined'],
    ['scsi 17 LUNs', { devices: [{ type: 'scsi', luns: Array.from({ length: 17 }, () => ({ size: '1M' })) }] }, 'devices.0.luns', 'Expected at most 16 LUNs'],
    ['scsi target 256', { devices: [{ type: 'scsi', luns: [{ size: '1M', target: 256 }] }] }, 'devices.0.luns.0.target', 'Expected <=255'],
    ['scsi lun 16384', { devices: [{ type: 'scsi', luns: [{ size: '1M', lun: 16384 }] }] }, 'devices.0.luns.0.lun', 'Expected <=16383'],
    ['scsi lun -1', { devices: [{ type: 'scsi', luns: [{ size: '1M', lun: -1 }] }] }, 'devices.0.luns.0.lun', 'Expected >=0'],
    ['scsi LUN without a medium', { devices: [{ type: 'scsi', luns: [{ format: 'raw' }] }] }, 'devices.0.luns.0', 'exactly one of "path"'],
    ['scsi two LUNs at one address', { devices: [{ type: 'scsi', luns: [{ size: '1M', lun: 1 }, { size: '1M', target: 0, lun: 1 }] }] }, 'devices.0', 'own target:lun'],
    ['scsi queues 0', { devices: [{ type: 'scsi', queues: 0, luns: [{ size: '1M' }] }] }, 'devices.0.queues', 'Expected >=1'],
    ['scsi unknown LUN key', { devices: [{ type: 'scsi', luns: [{ size: '1M', wwn: 5 }] }] }, 'devices.0.luns.0.wwn', 'received "wwn"'],
    ['verify past the scsi LUNs', { devices: [disk, { type: 'scsi', luns: [{ size: '1M' }] }], workloads: [{ type: 'verify', disk: 2 }] }, 'workloads.0.disk', 'below 2'],
    ['cache mode', { devices: [{ ...disk, cache: 'unsafe' }] }, 'devices.0.cache', 'received "unsafe"'],
    ['queues 0', { devices: [{ ...disk, queues: 0 }] }, 'devices.0.queues', 'Expected >=1'],
    ['queues 17', { devices: [{ ...disk, queues: 17 }] }, 'devices.0.queues', 'Expected <=16'],
    ['readOnly as a string', { devices: [{ ...disk, readOnly: 'on' }] }, 'devices.0.readOnly', 'Expected boolean'],
    ['path and size', { devices: [{ ...disk, size: '1M' }] }, 'devices.0', 'exactly one of "path"'],
    ['unknown key', { devices: [{ ...disk, fromat: 'raw' }] }, 'devices.0.fromat', 'received "fromat"'],
    ['memory too small', { memory: '1M' }, 'memory', 'Expected a size in'],
    ['memory not a size', { memory: 'lots' }, 'memory', 'Expected a size such as "256M" but received "lots"'],
    ['memory 64 GiB', { memory: '64G' }, 'memory', 'Expected a size in'],
    ['vcpus 0', { vcpus: 0 }, 'vcpus', 'Expected >=1'],
    ['vcpus 1.5', { vcpus: 1.5 }, 'vcpus', 'Invalid integer: Received 1.5'],
    ['transport', { transport: 'isa' }, 'transport', 'Expected ("pci" | "mmio")'],
    ['ring', { ring: 'ring' }, 'ring', 'Expected ("split" | "packed")'],
    ['eventIdx', { eventIdx: 1 }, 'eventIdx', 'Expected boolean'],
    ['queue size 100', { queueSize: 100 }, 'queueSize', 'Expected a power of two'],
    ['bench rw', { devices: [disk], workloads: [{ type: 'bench', rw: 'trim' }] }, 'workloads.0.rw', 'received "trim"'],
    ['bench iodepth', { devices: [disk], workloads: [{ type: 'bench', iodepth: 5000 }] }, 'workloads.0.iodepth', 'Expected <=1024'],
    ['bench runtime', { devices: [disk], workloads: [{ type: 'bench', runtime: -1 }] }, 'workloads.0.runtime', 'Expected a duration'],
    ['bench bs', { devices: [disk], workloads: [{ type: 'bench', bs: '1G' }] }, 'workloads.0.bs', 'Expected a size in'],
    ['verify without a disk', { workloads: [{ type: 'verify' }] }, 'workloads.0.disk', 'Expected a disk number (blk devices and scsi LUNs) below 0'],
    ['verify a read-only disk', { devices: [{ ...disk, readOnly: true }], workloads: [{ type: 'verify' }] }, 'workloads.0.disk', 'read-only'],
    ['randwrite a read-only disk', { devices: [{ ...disk, readOnly: true }], workloads: [{ type: 'bench', rw: 'randwrite' }] }, 'workloads.0.rw', 'read-only'],
    ['rng without a device', { workloads: [{ type: 'rng' }] }, 'workloads.0.type', 'Expected an rng device'],
    ['top-level typo', { vcpu: 2 }, 'vcpu', 'received "vcpu"'],
    ['devices not an array', { devices: { type: 'rng' } }, 'devices', 'Expected Array'],
  ];
  it.each(table)('rejects %s and names the field', (_name, input, field, text) => {
    const error = errorOf(input);
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.context.field).toBe(field);
    expect(error.message).toContain(text);
    expect(error.message).toContain(`at ${field}`);
  });

  it('lists every bad field, not only the first', () => {
    const error = errorOf({ vcpus: 0, transport: 'isa' });
    expect(error.message).toContain('at vcpus');
    expect(error.message).toContain('at transport');
  });

  it('does not mutate its input (nothing half-applied)', () => {
    const input = { devices: [{ type: 'blk', path: 'a.img' }] };
    const copy = structuredClone(input);
    parseVmConfig(input);
    expect(input).toEqual(copy);
  });
});

describe('flags ≡ JSON', () => {
  it('reads the example command line as its JSON config', () => {
    const flags: ConfigFlags = {
      memory: '256M',
      vcpus: '2',
      transport: 'mmio',
      ring: 'packed',
      eventIdx: 'off',
      blk: ['disk,,1.img,format=qcow2,readonly=on,queues=2,cache=writeback'],
      rng: 1,
      console: 1,
      workload: ['bench,rw=randread,bs=4k,iodepth=32,runtime=1.5'],
    };
    const json = {
      memory: '256M',
      vcpus: 2,
      transport: 'mmio',
      ring: 'packed',
      eventIdx: false,
      devices: [{ type: 'blk', path: 'disk,1.img', format: 'qcow2', readOnly: true, queues: 2, cache: 'writeback' }, { type: 'rng' }, { type: 'console' }],
      workloads: [{ type: 'bench', rw: 'randread', bs: 4096, iodepth: 32, runtime: 1.5 }],
    };
    expect(parseVmConfig(configFromFlags(flags))).toEqual(parseVmConfig(json));
  });

  it('names the same field for a bad flag as for bad JSON', () => {
    const fromFlag = errorOf(configFromFlags({ blk: ['a.img,format=qcow3'] }));
    const fromJson = errorOf({ devices: [{ type: 'blk', path: 'a.img', format: 'qcow3' }] });
    expect(fromFlag.message).toBe(fromJson.message);
    expect(errorOf(configFromFlags({ blk: ['a.img,readonly=maybe'] })).context.field).toBe('devices.0.readOnly');
    expect(errorOf(configFromFlags({ vcpus: 'two' })).context.field).toBe('vcpus');
  });

  it('reads --scsi as a controller with one LUN; disks are numbered blk first, then scsi LUNs', () => {
    const config = parseVmConfig(configFromFlags({ blk: ['size=1M'], scsi: ['a.qcow2,format=qcow2,queues=2,target=1,lun=5,readonly=on', 'size=2M'], workload: ['bench,disk=1,rw=randread'] }));
    expect(config.devices).toEqual([
      { type: 'blk', size: 2 ** 20, format: 'raw', readOnly: false, queues: 1, cache: 'writeback' },
      { type: 'scsi', queues: 2, luns: [{ path: 'a.qcow2', format: 'qcow2', readOnly: true, cache: 'writeback', target: 1, lun: 5 }] },
      { type: 'scsi', queues: 1, luns: [{ size: 2 * 2 ** 20, format: 'raw', readOnly: false, cache: 'writeback', target: 0, lun: 0 }] },
    ]);
    expect(guestDisks(config).map((d) => [d.device, d.lun?.target, d.lun?.lun])).toEqual([
      [0, undefined, undefined],
      [1, 1, 5],
      [2, 0, 0],
    ]);
  });

  it('numbers scsi LUNs without `lun` from 0 on each target', () => {
    const config = parseVmConfig({ devices: [{ type: 'scsi', luns: [{ size: '1M' }, { size: '1M', target: 2 }, { size: '1M' }, { size: '1M', target: 2, lun: 7 }, { size: '1M', target: 2 }] }] });
    const luns = config.devices[0]!.type === 'scsi' ? config.devices[0]!.luns.map((l) => `${l.target}:${l.lun}`) : [];
    expect(luns).toEqual(['0:0', '2:0', '0:1', '2:7', '2:2']);
  });

  it('lets flags override the --config file and replace its device list', () => {
    const base = { vcpus: 4, devices: [{ type: 'rng' }] };
    const config = parseVmConfig(configFromFlags({ vcpus: '2', console: 1 }, base));
    expect(config.vcpus).toBe(2);
    expect(config.devices).toEqual([{ type: 'console' }]);
  });

  it('parses any valid blk option list to the same config as its JSON (property)', () => {
    const blk = fc.record(
      {
        path: fc.stringMatching(/^[a-z0-9.,=/_-]{1,12}$/),
        format: fc.constantFrom('raw', 'qcow2'),
        readOnly: fc.boolean(),
        queues: fc.integer({ min: 1, max: 16 }),
        cache: fc.constantFrom('writeback', 'writethrough', 'none'),
      },
      { requiredKeys: ['path'] },
    );
    fc.assert(
      fc.property(fc.array(blk, { maxLength: 3 }), fc.integer({ min: 1, max: 16 }), fc.constantFrom('pci', 'mmio'), (disks, vcpus, transport) => {
        const flags: ConfigFlags = {
          vcpus: String(vcpus),
          transport,
          blk: disks.map((d) =>
            Object.entries(d)
              .map(([k, value]) => {
                const key = k === 'readOnly' ? 'readonly' : k;
                const text = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
                return `${key}=${text.replaceAll(',', ',,')}`;
              })
              .join(','),
          ),
        };
        const json = { vcpus, transport, ...(disks.length > 0 ? { devices: disks.map((d) => ({ type: 'blk', ...d })) } : {}) };
        expect(parseVmConfig(configFromFlags(flags))).toEqual(parseVmConfig(json));
      }),
      { numRuns: 200 },
    );
  });
});
