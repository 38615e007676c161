import { NET_FAULTS, type NetFault } from './errors.js';

/** Counters of one virtqueue of a virtio-net device. */
export interface NetQueueMetrics {
  /** Frames delivered (rx: into guest buffers; tx: handed to the back-end). */
  frames: number;
  /** Frame bytes, without the virtio_net_hdr. */
  bytes: number;
  /** Frames dropped on this queue (each also counted under a fault or `filtered`). */
  drops: number;
  /** Used buffer notifications sent. */
  interrupts: number;
  /** Available buffer notifications received (kicks). */
  notifications: number;
}

/**
 * Counters of one virtio-net device. `toJSON()` gives this documented shape (all numbers):
 *
 * ```json
 * {
 *   "queues": [{ "name": "rx0", "frames": 0, "bytes": 0, "drops": 0, "interrupts": 0, "notifications": 0 }, ...],
 *   "rxFrames": 0, "rxBytes": 0, "txFrames": 0, "txBytes": 0,
 *   "filtered": 0, "rxStalls": 0, "txStalls": 0, "softwareChecksums": 0, "releasedRxBuffers": 0,
 *   "faults": { "TX_SHORT_HEADER": 0, ... one key per NetFault },
 *   "ctrlCommands": 0, "ctrlErrors": 0, "configChanges": 0,
 *   "ringErrors": 0, "needsReset": 0, "configWrites": 0
 * }
 * ```
 * `queues` has one entry per declared virtqueue (rx0, tx0, rx1, tx1, ..., ctrl). `filtered`
 * counts received frames the receive filter (§5.1.6.5.1) dropped; `rxStalls` the times a frame
 * waited because the guest had no receive buffers (back-pressure, not a drop); `txStalls` the
 * times the back-end refused a frame and the queue waited for `writable()`;
 * `softwareChecksums` the partial checksums the device completed itself; `releasedRxBuffers`
 * the held receive buffers given back empty by `releaseHeldRxBuffers()`.
 */
export class NetMetrics {
  readonly queues: NetQueueMetrics[];
  readonly queueNames: readonly string[];
  filtered = 0;
  rxStalls = 0;
  txStalls = 0;
  softwareChecksums = 0;
  releasedRxBuffers = 0;
  readonly faults: Record<NetFault, number> = Object.fromEntries(NET_FAULTS.map((f) => [f, 0])) as Record<NetFault, number>;
  ctrlCommands = 0;
  ctrlErrors = 0;
  configChanges = 0;
  ringErrors = 0;
  needsReset = 0;
  configWrites = 0;

  constructor(queueNames: readonly string[]) {
    this.queueNames = queueNames;
    this.queues = queueNames.map(() => ({ frames: 0, bytes: 0, drops: 0, interrupts: 0, notifications: 0 }));
  }

  /** Records a fault; `queue` (when given) also counts a dropped frame there. */
  fault(fault: NetFault, queue?: number): void {
    this.faults[fault]++;
    if (queue !== undefined) {
      const q = this.queues[queue];
      if (q !== undefined) q.drops++;
    }
  }

  private sum(parity: 0 | 1, field: 'frames' | 'bytes'): number {
    let total = 0;
    const dataQueues = this.queueNames.length - (this.queueNames.length % 2);
    for (let i = parity; i < dataQueues; i += 2) total += this.queues[i]![field];
    return total;
  }

  get rxFrames(): number {
    return this.sum(0, 'frames');
  }
  get rxBytes(): number {
    return this.sum(0, 'bytes');
  }
  get txFrames(): number {
    return this.sum(1, 'frames');
  }
  get txBytes(): number {
    return this.sum(1, 'bytes');
  }

  toJSON(): Record<string, unknown> {
    return {
      queues: this.queues.map((q, i) => ({ name: this.queueNames[i], ...q })),
      rxFrames: this.rxFrames,
      rxBytes: this.rxBytes,
      txFrames: this.txFrames,
      txBytes: this.txBytes,
      filtered: this.filtered,
      rxStalls: this.rxStalls,
      txStalls: this.txStalls,
      softwareChecksums: this.softwareChecksums,
      releasedRxBuffers: this.releasedRxBuffers,
      faults: { ...this.faults },
      ctrlCommands: this.ctrlCommands,
      ctrlErrors: this.ctrlErrors,
      configChanges: this.configChanges,
      ringErrors: this.ringErrors,
      needsReset: this.needsReset,
      configWrites: this.configWrites,
    };
  }
}
