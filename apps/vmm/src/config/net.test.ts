import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VmmError } from '../errors.js';
import { configFromFlags } from './flags.js';
import { parseVmGroup, replicateVm } from './group.js';
import { formatIpv4Cidr, offsetIpv4Cidr, parseIpv4Cidr, parseMacAddress, parseNetBackend } from './net.js';
import { parseVmConfig } from './schema.js';

function errorOf(run: () => unknown): VmmError {
  try {
    run();
  } catch (error) {
    if (VmmError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

const net = { type: 'net', backend: 'switch:lan0' };

describe('net device config', () => {
  it('fills the defaults: QEMU\'s MAC, 10.0.0.1/24, one queue pair, MTU 1500', () => {
    expect(parseVmConfig({ devices: [net] }).devices[0]).toEqual({ type: 'net', backend: 'switch:lan0', mac: '52:54:00:12:34:56', ip: '10.0.0.1/24', queues: 1, mtu: 1500 });
  });

  const bad: [string, unknown, string, string][] = [
    ['MAC with 5 bytes', { devices: [{ ...net, mac: '52:54:00:12:34' }] }, 'devices.0.mac', 'Expected a MAC address such as'],
    ['MAC with a non-hex digit', { devices: [{ ...net, mac: '52:54:00:12:34:zz' }] }, 'devices.0.mac', 'Expected a MAC address such as'],
    ['multicast MAC', { devices: [{ ...net, mac: '01:00:5e:00:00:01' }] }, 'devices.0.mac', 'unicast'],
    ['broadcast MAC', { devices: [{ ...net, mac: 'ff:ff:ff:ff:ff:ff' }] }, 'devices.0.mac', 'unicast'],
    ['all-zero MAC', { devices: [{ ...net, mac: '00:00:00:00:00:00' }] }, 'devices.0.mac', 'other than 00:00:00:00:00:00'],
    ['MAC as a number', { devices: [{ ...net, mac: 42 }] }, 'devices.0.mac', 'Expected string'],
    ['unknown back-end', { devices: [{ ...net, backend: 'vde:/tmp/x' }] }, 'devices.0.backend', 'Expected switch:NAME, tap:IFNAME or stream:PATH'],
    ['empty switch name', { devices: [{ ...net, backend: 'switch:' }] }, 'devices.0.backend', 'Expected switch:NAME'],
    ['switch name with a slash', { devices: [{ ...net, backend: 'switch:../x' }] }, 'devices.0.backend', 'Expected switch:NAME'],
    ['TAP name of 16 bytes', { devices: [{ ...net, backend: 'tap:abcdefghijklmnop' }] }, 'devices.0.backend', 'Expected tap:IFNAME (1-15'],
    ['stream without a path', { devices: [{ ...net, backend: 'stream:' }] }, 'devices.0.backend', 'Unix socket path of 1-107 bytes'],
    ['stream path of 200 bytes', { devices: [{ ...net, backend: `stream:/${'x'.repeat(200)}` }] }, 'devices.0.backend', 'Unix socket path of 1-107 bytes'],
    ['stream with an unknown option', { devices: [{ ...net, backend: 'stream:/tmp/s,reconnect=1' }] }, 'devices.0.backend', 'received the option "reconnect=1"'],
    ['IP without dots', { devices: [{ ...net, ip: '10.0.0' }] }, 'devices.0.ip', 'Expected an IPv4 address such as'],
    ['IP octet 256', { devices: [{ ...net, ip: '10.0.0.256/24' }] }, 'devices.0.ip', 'Expected an IPv4 address such as'],
    ['prefix /31', { devices: [{ ...net, ip: '10.0.0.1/31' }] }, 'devices.0.ip', 'prefix length in [8, 30]'],
    ['network address', { devices: [{ ...net, ip: '10.0.0.0/24' }] }, 'devices.0.ip', 'not its network or broadcast'],
    ['broadcast address', { devices: [{ ...net, ip: '10.0.0.255/24' }] }, 'devices.0.ip', 'not its network or broadcast'],
    ['multicast IP', { devices: [{ ...net, ip: '224.0.0.1/24' }] }, 'devices.0.ip', 'unicast host address'],
    ['MTU 67', { devices: [{ ...net, mtu: 67 }] }, 'devices.0.mtu', 'Expected >=68'],
    ['MTU 65536', { devices: [{ ...net, mtu: 65536 }] }, 'devices.0.mtu', 'Expected <=65535'],
    ['9 queue pairs', { devices: [{ ...net, backend: 'tap:tap0', queues: 9 }] }, 'devices.0.queues', 'Expected <=8'],
    ['2 queue pairs on a switch', { devices: [{ ...net, queues: 2 }] }, 'devices.0.queues', 'only a TAP has several'],
    ['unknown key', { devices: [{ ...net, vlan: 5 }] }, 'devices.0.vlan', 'received "vlan"'],
    ['ping without a net device', { workloads: [{ type: 'ping', peer: '10.0.0.2' }] }, 'workloads.0.net', 'Expected a net device number below 0'],
    ['ping without a peer in a one-VM run', { devices: [net], workloads: [{ type: 'ping' }] }, 'workloads.0.peer', 'no other VM in this run'],
    ['ping the guest itself', { devices: [net], workloads: [{ type: 'ping', peer: '10.0.0.1' }] }, 'workloads.0.peer', "the guest's own"],
    ['ping a bad address', { devices: [net], workloads: [{ type: 'ping', peer: 'localhost' }] }, 'workloads.0.peer', 'Expected an IPv4 address'],
    ['ping larger than the MTU', { devices: [net], workloads: [{ type: 'ping', peer: '10.0.0.2', size: 1473 }] }, 'workloads.0.size', 'at most 1472 bytes'],
    ['udp-echo port 0', { devices: [net], workloads: [{ type: 'udp-echo', peer: '10.0.0.2', port: 0 }] }, 'workloads.0.port', 'Expected >=1'],
    ['net-bench packet below 28 bytes', { devices: [net], workloads: [{ type: 'net-bench', peer: '10.0.0.2', size: 27 }] }, 'workloads.0.size', 'Expected >=28'],
    ['net-bench packet above the MTU', { devices: [net], workloads: [{ type: 'net-bench', peer: '10.0.0.2', size: 9000 }] }, 'workloads.0.size', 'at most 1500 bytes'],
    ['count 0', { devices: [net], workloads: [{ type: 'ping', peer: '10.0.0.2', count: 0 }] }, 'workloads.0.count', 'Expected >=1'],
    ['ping interval 0', { devices: [net], workloads: [{ type: 'ping', peer: '10.0.0.2', interval: 0 }] }, 'workloads.0.interval', 'Expected a duration'],
  ];
  it.each(bad)('rejects %s with INVALID_CONFIG naming the field', (_name, input, field, text) => {
    const error = errorOf(() => parseVmConfig(input));
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.context.field).toBe(field);
    expect(error.message).toContain(text);
  });

  it('reads --net as its JSON: the implied key is the back-end, server= belongs to a stream back-end', () => {
    expect(parseVmConfig(configFromFlags({ net: ['switch:lan1,mac=52:54:00:AA:BB:CC,ip=192.168.7.9/16,mtu=9000'] })).devices[0]).toEqual({
      type: 'net',
      backend: 'switch:lan1',
      mac: '52:54:00:aa:bb:cc',
      ip: '192.168.7.9/16',
      queues: 1,
      mtu: 9000,
    });
    expect(configFromFlags({ net: ['stream:/run/n.sock,server=on'] }).devices).toEqual([{ type: 'net', backend: 'stream:/run/n.sock,server=on' }]);
    expect(parseNetBackend('stream:/run/n.sock,server=on')).toEqual({ kind: 'stream', path: '/run/n.sock', server: true });
    expect(parseNetBackend('tap:tap0')).toEqual({ kind: 'tap', ifname: 'tap0' });
    expect(errorOf(() => parseVmConfig(configFromFlags({ net: ['bogus:x'] }))).context.field).toBe('devices.0.backend');
  });

  it('never throws on arbitrary back-end, MAC or IP text: a spec or a reason (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        for (const parse of [parseNetBackend, parseMacAddress, parseIpv4Cidr]) {
          const result = parse(text) as unknown;
          expect(result === undefined).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('formats and offsets an address inside its subnet (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 2 ** 24 - 1 }), fc.integer({ min: 8, max: 30 }), fc.integer({ min: -8, max: 8 }), (first, rest, prefix, offset) => {
        const text = `${first}.${rest >>> 16}.${(rest >>> 8) & 255}.${rest & 255}/${prefix}`;
        const cidr = parseIpv4Cidr(text);
        if (typeof cidr === 'string') return;
        expect(parseIpv4Cidr(formatIpv4Cidr(cidr))).toEqual(cidr);
        const moved = offsetIpv4Cidr(cidr, offset);
        if (moved === undefined) return;
        expect(typeof parseIpv4Cidr(formatIpv4Cidr(moved))).toBe('object');
        expect(moved.address - cidr.address).toBe(offset);
      }),
      { numRuns: 300 },
    );
  });
});

describe('multi-VM config', () => {
  const vm = { devices: [net], workloads: [{ type: 'ping' }] };

  it('gives each VM its own default MAC and address, and each ping the next VM as its peer', () => {
    const group = parseVmGroup({ vms: [vm, vm, vm] });
    expect(group.vms.map((v) => [v.devices[0]?.type === 'net' && v.devices[0].mac, v.devices[0]?.type === 'net' && v.devices[0].ip])).toEqual([
      ['52:54:00:12:34:56', '10.0.0.1/24'],
      ['52:54:00:12:34:57', '10.0.0.2/24'],
      ['52:54:00:12:34:58', '10.0.0.3/24'],
    ]);
    expect(group.vms.map((v) => v.workloads[0]?.type === 'ping' && v.workloads[0].peer)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.1']);
  });

  it('--vms N moves given addresses up by the copy number', () => {
    const base = parseVmConfig({ devices: [{ ...net, mac: '02:00:00:00:00:10', ip: '192.168.1.10/24' }], workloads: [{ type: 'udp-echo' }] }, { inGroup: true });
    const vms = replicateVm(base, 2);
    expect(vms.map((v) => v.devices[0])).toMatchObject([
      { mac: '02:00:00:00:00:10', ip: '192.168.1.10/24' },
      { mac: '02:00:00:00:00:11', ip: '192.168.1.11/24' },
    ]);
    expect(vms.map((v) => v.workloads[0]?.type === 'udp-echo' && v.workloads[0].peer)).toEqual(['192.168.1.11', '192.168.1.10']);
    expect(errorOf(() => replicateVm(parseVmConfig({ devices: [{ ...net, ip: '10.0.0.253/24' }] }), 3)).context.field).toBe('devices.0.ip');
    expect(errorOf(() => replicateVm(base, 9)).context.field).toBe('vms');
  });

  const bad: [string, unknown, string, string][] = [
    ['a bad field in VM 1', { vms: [vm, { ...vm, devices: [{ ...net, mac: 'nope' }] }] }, 'vms.1.devices.0.mac', 'Expected a MAC address'],
    ['two VMs with one MAC on a switch', { vms: [{ devices: [{ ...net, mac: '02:00:00:00:00:01' }] }, { devices: [{ ...net, mac: '02:00:00:00:00:01' }] }] }, 'vms.1.devices.0.mac', 'not used on switch lan0'],
    ['two VMs with one IP on a switch', { vms: [{ devices: [{ ...net, ip: '10.1.0.5/24' }] }, { devices: [{ ...net, ip: '10.1.0.5/24' }] }] }, 'vms.1.devices.0.ip', 'not used on switch lan0'],
    ['one VM and no peer', { vms: [vm] }, 'vms.0.workloads.0.peer', 'no other VM'],
    ['a peer VM without that net device', { vms: [{ devices: [net, { ...net, backend: 'switch:lan1' }], workloads: [{ type: 'ping', net: 1 }] }, { devices: [net] }] }, 'vms.0.workloads.0.peer', 'VM 1 has no net device 1'],
    ['9 VMs', { vms: Array.from({ length: 9 }, () => vm) }, 'vms', 'a list of 1 to 8'],
    ['vms not a list', { vms: 'two' }, 'vms', 'a list of 1 to 8'],
    ['another top-level key', { vms: [vm, vm], memory: '64M' }, 'memory', 'Expected only "vms"'],
  ];
  it.each(bad)('rejects %s with INVALID_CONFIG naming the field', (_name, input, field, text) => {
    const error = errorOf(() => parseVmGroup(input));
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.context.field).toBe(field);
    expect(error.message).toContain(text);
  });
});
