import * as v from 'valibot';
import { VmmError } from '../errors.js';
import { formatIpv4Address, formatIpv4Cidr, formatMacAddress, offsetIpv4Cidr, parseIpv4Cidr, parseMacAddress, parseNetBackend } from './net.js';
import { netDevices, parseVmConfig, type VmConfig } from './schema.js';

/** VMs one `vmm run` may hold (each has its own vCPU workers and guest RAM). */
export const MAX_VMS = 8;

/** Several model guests in one process: their net devices may share in-process L2 switches. */
export interface VmGroupConfig {
  readonly vms: readonly VmConfig[];
}

/** A config file describes several VMs when its top level has `vms`. */
export function isGroupInput(input: unknown): input is { vms: unknown } {
  return typeof input === 'object' && input !== null && !Array.isArray(input) && 'vms' in input;
}

function invalid(message: string, field: string): VmmError {
  return new VmmError('INVALID_CONFIG', `invalid config: ${message} → at ${field}`, { field });
}

/**
 * Validates a multi-VM config `{ "vms": [ {...}, {...} ] }`: each VM against the VM schema (a bad
 * field is named `vms.1.devices.0.mac`), then the rules between VMs (see {@link resolveGroup}).
 */
export function parseVmGroup(input: unknown): VmGroupConfig {
  if (!isGroupInput(input)) throw invalid('Expected an object with "vms" (a list of VM configs)', 'vms');
  const extra = Object.keys(input).filter((k) => k !== 'vms');
  if (extra.length > 0) throw invalid(`Expected only "vms" at the top of a multi-VM config but received ${JSON.stringify(extra[0])}`, extra[0]!);
  const list = v.safeParse(v.pipe(v.array(v.unknown()), v.minLength(1), v.maxLength(MAX_VMS)), input.vms);
  if (!list.success) throw invalid(`Expected a list of 1 to ${MAX_VMS} VM configs`, 'vms');
  const vms = list.output.map((raw, vm) => parseVmConfig(raw, { vm, path: `vms.${vm}.`, inGroup: true }));
  return { vms: resolveGroup(vms) };
}

/**
 * `--vms N`: N copies of one VM. Copy i has every net device's MAC (last byte) and IPv4 address
 * (host part) moved up by i, so the copies can talk to each other on one switch.
 */
export function replicateVm(config: VmConfig, count: number): VmConfig[] {
  if (!Number.isInteger(count) || count < 1 || count > MAX_VMS) throw invalid(`Expected a VM count in [1, ${MAX_VMS}] but received ${count}`, 'vms');
  const copies = Array.from({ length: count }, (_, vm): VmConfig => ({
    ...config,
    devices: config.devices.map((device, index) => {
      if (device.type !== 'net' || vm === 0) return device;
      const mac = parseMacAddress(device.mac) as Uint8Array;
      mac[5] = (mac[5]! + vm) & 0xff;
      const ip = offsetIpv4Cidr(parseIpv4Cidr(device.ip) as { address: number; prefixLength: number }, vm);
      if (ip === undefined) throw invalid(`Expected room for ${count} hosts after ${device.ip} in its subnet`, `devices.${index}.ip`);
      return { ...device, mac: formatMacAddress(mac), ip: formatIpv4Cidr(ip) };
    }),
  }));
  return resolveGroup(copies);
}

/**
 * The rules between the VMs of one run: on each switch, MAC and IPv4 addresses are unique; a net
 * workload without `peer` targets the same net device of the next VM (the last VM's, the first's).
 * Returns the configs with every peer filled in.
 */
export function resolveGroup(vms: readonly VmConfig[]): VmConfig[] {
  const seenMac = new Map<string, string>();
  const seenIp = new Map<string, string>();
  vms.forEach((config, vm) => {
    for (const { device, config: net } of netDevices(config)) {
      const backend = parseNetBackend(net.backend);
      if (typeof backend === 'string' || backend.kind !== 'switch') continue;
      const where = `vms.${vm}.devices.${device}`;
      const mac = `${backend.name}/${net.mac}`;
      const ip = `${backend.name}/${formatIpv4Address((parseIpv4Cidr(net.ip) as { address: number }).address)}`;
      if (seenMac.has(mac)) throw invalid(`Expected a MAC address not used on switch ${backend.name} but ${net.mac} is also at ${seenMac.get(mac)}`, `${where}.mac`);
      if (seenIp.has(ip)) throw invalid(`Expected an IPv4 address not used on switch ${backend.name} but ${net.ip} is also at ${seenIp.get(ip)}`, `${where}.ip`);
      seenMac.set(mac, `${where}.mac`);
      seenIp.set(ip, `${where}.ip`);
    }
  });
  return vms.map((config, vm) => ({
    ...config,
    workloads: config.workloads.map((workload, index) => {
      if ((workload.type !== 'ping' && workload.type !== 'udp-echo' && workload.type !== 'net-bench') || workload.peer !== undefined) return workload;
      const field = `vms.${vm}.workloads.${index}.peer`;
      if (vms.length === 1) throw invalid('Expected "peer" (an IPv4 address): there is no other VM in this run to default to', field);
      const next = (vm + 1) % vms.length;
      const target = netDevices(vms[next]!)[workload.net];
      if (target === undefined) throw invalid(`Expected "peer": VM ${next} has no net device ${workload.net} to default to`, field);
      const address = parseIpv4Cidr(target.config.ip) as { address: number };
      return { ...workload, peer: formatIpv4Address(address.address) };
    }),
  }));
}
