import type { WorkloadResult } from '../report.js';

/** What a vCPU worker posts to the VMM. */
export type VcpuMessage =
  | { readonly type: 'progress'; readonly workload: number; readonly fraction: number }
  | { readonly type: 'result'; readonly workload: number; readonly result: WorkloadResult }
  /** The vCPU has finished its workloads (it lingers when the boot info says so). */
  | { readonly type: 'idle' }
  | { readonly type: 'done'; readonly exits: number; readonly doorbells: number; readonly interrupts: number }
  /** `message` already ends with the error's code (`... [CODE]`); `code` is that code (a VmmErrorCode or another package's). */
  | { readonly type: 'error'; readonly message: string; readonly code: string };
