import type { VmConfig } from './config/schema.js';
import type { GroupReport } from './engine/run-group.js';
import { formatSize } from './config/size.js';
import { LatencyHistogram } from './stats/latency-histogram.js';
import type { BenchResult } from './workloads/bench.js';
import type { ConsoleResult } from './workloads/console.js';
import type { RngResult } from './workloads/rng.js';
import type { VerifyResult } from './workloads/verify.js';
import type { NetBenchResult, PingResult, RoundTrips, UdpEchoResult } from './workloads/net.js';

/** One workload's outcome. */
export type WorkloadResult = VerifyResult | BenchResult | ConsoleResult | RngResult | PingResult | UdpEchoResult | NetBenchResult;

/** What a device reported at the end of the run (its metrics, and whether it failed). */
export interface DeviceReport {
  readonly name: string;
  readonly description: string;
  /** DEVICE_NEEDS_RESET was set during the run, and why. */
  readonly needsReset?: string;
  readonly metrics?: Record<string, unknown>;
  /** blk: ns spent inside the backing store's read/write calls, and how many calls. */
  readonly backingNs?: number;
  readonly backingRequests?: number;
}

/** Counters of the machine itself (the KVM-like mechanics). */
export interface MachineStats {
  /** Synchronous exits served (register accesses). */
  readonly exits: number;
  /** Queue notifications that rang a doorbell instead of exiting. */
  readonly doorbells: number;
  /** Interrupts injected into vCPUs. */
  readonly interrupts: number;
  /** Accesses to an address no device claims. */
  readonly unclaimedAccesses: number;
  /** Register accesses whose device handler threw (answered with all ones, the VMM kept running). */
  readonly handlerFaults: number;
  /** MSI writes to an address that is not an interrupt address or names no vCPU. */
  readonly strayMessages: number;
}

/** The result of a run: in `vmm run --json` form, and what {@link formatReport} prints. */
export interface RunReport {
  readonly config: VmConfig;
  readonly results: readonly WorkloadResult[];
  readonly devices: readonly DeviceReport[];
  readonly machine: MachineStats;
  readonly elapsedMs: number;
}

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** A latency in ns, printed in the unit that keeps three significant digits. */
export function formatLatency(ns: number): string {
  if (ns < 1_000) return `${ns.toFixed(0)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toPrecision(3)} µs`;
  if (ns < 1_000_000_000) return `${(ns / 1_000_000).toPrecision(3)} ms`;
  return `${(ns / 1_000_000_000).toPrecision(3)} s`;
}

/** Bytes per second, in MiB/s. */
export function formatBandwidth(bytes: number, ns: number): string {
  if (ns <= 0) return '0 MiB/s';
  return `${((bytes / 2 ** 20) / (ns / 1e9)).toFixed(1)} MiB/s`;
}

function describeRtt(rtt: RoundTrips | undefined): string {
  return rtt === undefined ? '' : `, rtt min/avg/max ${rtt.minMs.toFixed(3)}/${rtt.avgMs.toFixed(3)}/${rtt.maxMs.toFixed(3)} ms`;
}

function describeResult(result: WorkloadResult): string {
  switch (result.type) {
    case 'verify':
      return (
        `verify   disk ${result.disk}: ${formatSize(result.bytes)} in ${formatSize(result.bs)} blocks written ` +
        `(${formatBandwidth(result.bytes, result.writeMs * 1e6)}), flushed, read back (${formatBandwidth(result.bytes, result.readMs * 1e6)}): ` +
        `data matches (seed 0x${result.seed.toString(16)})`
      );
    case 'bench': {
      const h = LatencyHistogram.fromJSON(result.latency);
      const ios = result.reads + result.writes;
      const iops = ios / (result.elapsedNs / 1e9);
      const mix = result.rw === 'randrw' ? ` (${number.format(result.reads)} reads, ${number.format(result.writes)} writes)` : '';
      return (
        `bench    disk ${result.disk}: ${result.rw} bs=${formatSize(result.bs)} iodepth=${result.iodepth} numjobs=${result.numjobs}, ` +
        `${(result.elapsedNs / 1e9).toFixed(2)} s: ${number.format(iops)} IOPS, ${formatBandwidth(result.bytes, result.elapsedNs)}${mix}\n` +
        `         latency p50 ${formatLatency(h.percentile(50))}, p99 ${formatLatency(h.percentile(99))}, ` +
        `p99.9 ${formatLatency(h.percentile(99.9))}, max ${formatLatency(h.max)}` +
        (result.backingRequests !== undefined && result.backingRequests > 0 && h.count > 0
          ? `\n         stack overhead ${formatLatency(h.mean - (result.backingNs ?? 0) / result.backingRequests)} per request ` +
            `(mean latency ${formatLatency(h.mean)} − backing store ${formatLatency((result.backingNs ?? 0) / result.backingRequests)})`
          : '')
      );
    }
    case 'console':
      return `console  echoed ${result.bytes} bytes through the console in ${result.roundTripMs.toFixed(2)} ms`;
    case 'rng':
      return `rng      ${formatSize(result.bytes)} of entropy in ${result.requests} requests (${result.distinctValues}/256 byte values seen)`;
    case 'ping':
      return (
        `ping     net ${result.net} → ${result.peer}: ${result.transmitted} echo requests of ${result.size} bytes, ${result.received} replies ` +
        `(${(((result.transmitted - result.received) / result.transmitted) * 100).toFixed(0)}% loss)${describeRtt(result.rtt)}`
      );
    case 'udp-echo':
      return `udp-echo net ${result.net} → ${result.peer}:${result.port}: ${result.sent} datagrams of ${result.size} bytes, ${result.echoed} echoed intact${describeRtt(result.rtt)}`;
    case 'net-bench': {
      const seconds = result.elapsedNs / 1e9;
      return (
        `net-bench net ${result.net} → ${result.peer}: ${result.size}-byte IP packets, ${seconds.toFixed(2)} s: ${number.format(result.receivedPackets / seconds)} packets/s received, ` +
        `${formatBandwidth(result.receivedBytes, result.elapsedNs)} (${number.format(result.sentPackets)} sent, ${number.format(result.receivedPackets)} received)`
      );
    }
  }
}

/** The readable report `vmm run` prints. */
export function formatReport(report: RunReport): string {
  const c = report.config;
  const lines: string[] = [];
  lines.push(
    `virtio-ts model guest: ${c.vcpus} vCPU${c.vcpus > 1 ? 's' : ''} (${c.dispatch === 'workers' ? 'worker threads' : 'inline, synchronous dispatch'}), ` +
      `${formatSize(c.memory)} RAM, virtio-${c.transport}, ${c.ring} ring, event idx ${c.eventIdx ? 'on' : 'off'}, indirect ${c.indirect ? 'on' : 'off'}, queue size ${c.queueSize}`,
  );
  for (const device of report.devices) {
    lines.push(`  ${device.name.padEnd(9)}${device.description}${device.needsReset === undefined ? '' : `  NEEDS_RESET: ${device.needsReset}`}`);
  }
  lines.push('');
  for (const result of report.results) lines.push(describeResult(result));
  lines.push('');
  const m = report.machine;
  lines.push(
    `machine  ${number.format(m.exits)} exits, ${number.format(m.doorbells)} doorbells, ${number.format(m.interrupts)} interrupts` +
      `${m.unclaimedAccesses > 0 ? `, ${number.format(m.unclaimedAccesses)} unclaimed accesses` : ''}` +
      `${m.handlerFaults > 0 ? `, ${number.format(m.handlerFaults)} handler faults` : ''}` +
      `${m.strayMessages > 0 ? `, ${number.format(m.strayMessages)} stray MSI writes` : ''}; run took ${(report.elapsedMs / 1000).toFixed(2)} s`,
  );
  return lines.join('\n');
}

/** The readable report of a multi-VM run: each VM's report, then the switches. */
export function formatGroupReport(report: GroupReport): string {
  const parts = report.vms.map((vm, i) => `== vm${i} ==\n${formatReport(vm)}`);
  for (const lan of report.switches) {
    const s = lan.stats;
    parts.push(
      `switch   ${lan.name}: ${lan.ports} ports, ${number.format(s.forwarded)} frames forwarded, ${number.format(s.flooded)} flooded, ` +
        `${number.format(s.filtered)} filtered; learned ${Object.entries(lan.addresses).map(([mac, port]) => `${mac} on ${port}`).join(', ') || 'nothing'}`,
    );
  }
  parts.push(`${report.vms.length} VMs; run took ${(report.elapsedMs / 1000).toFixed(2)} s`);
  return parts.join('\n\n');
}
