// @virtio-ts/vmm: the reference VMM's model-guest engine, as a library (the `vmm` CLI is main.ts).
export { VmmError, describeError, type VmmErrorCode, type VmmErrorContext } from './errors.js';
export {
  VmConfigSchema,
  parseVmConfig,
  type VmConfig,
  type VmConfigInput,
  type DeviceConfig,
  type BlkDeviceConfig,
  type WorkloadConfig,
  type VerifyWorkloadConfig,
  type BenchWorkloadConfig,
  type ScsiDeviceConfig,
  type NetDeviceConfig,
  type PingWorkloadConfig,
  type UdpEchoWorkloadConfig,
  type NetBenchWorkloadConfig,
} from './config/schema.js';
export { configFromFlags, blkFromFlag, workloadFromFlag, type ConfigFlags } from './config/flags.js';
export { parseOptionList, formatOptionList, type OptionList } from './config/option-list.js';
export { parseSize, formatSize, parseDuration } from './config/size.js';
export { runVm, type RunOptions } from './engine/run-vm.js';
export { runVmGroup, type GroupReport, type GroupRunOptions, type SwitchReport } from './engine/run-group.js';
export { parseVmGroup, replicateVm, isGroupInput, MAX_VMS, type VmGroupConfig } from './config/group.js';
export { parseNetBackend, type NetBackendSpec } from './config/net.js';
export { createImage, readImage } from './engine/images.js';
export { formatReport, formatGroupReport, type RunReport, type WorkloadResult, type DeviceReport, type MachineStats } from './report.js';
export { LatencyHistogram, type LatencyHistogramData } from './stats/latency-histogram.js';
export { fillPattern, findPatternMismatch } from './workloads/pattern.js';
export type { BenchResult } from './workloads/bench.js';
export type { VerifyResult } from './workloads/verify.js';
export type { ConsoleResult } from './workloads/console.js';
export type { RngResult } from './workloads/rng.js';
export type { PingResult, UdpEchoResult, NetBenchResult } from './workloads/net.js';
