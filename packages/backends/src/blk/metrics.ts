import { BLK_FAULTS, type BlkFault } from './errors.js';

/**
 * Counters of one virtio-blk device. `toJSON()` gives this documented shape (all numbers):
 *
 * ```json
 * {
 *   "requests": { "in": 0, "out": 0, "flush": 0, "getId": 0, "discard": 0, "writeZeroes": 0 },
 *   "readBytes": 0, "writeBytes": 0, "discardBytes": 0, "writeZeroesBytes": 0,
 *   "status": { "ok": 0, "ioerr": 0, "unsupp": 0 },
 *   "faults": { "NO_STATUS_BYTE": 0, "HEADER_TOO_SHORT": 0, ... one key per BlkFault },
 *   "invalidRequests": 0,
 *   "inFlight": 0, "maxInFlight": 0,
 *   "ringErrors": 0, "needsReset": 0, "droppedAfterReset": 0,
 *   "notifications": 0, "interrupts": 0, "configWrites": 0, "ignoredConfigWrites": 0
 * }
 * ```
 * `requests` counts requests completed with VIRTIO_BLK_S_OK, by type; `invalidRequests` is the sum of `faults`
 * except `BACKEND_ERROR`; `ringErrors` counts chains the ring rejected; `droppedAfterReset`
 * counts completions that arrived after a device reset and were not returned to the ring.
 */
export class BlkMetrics {
  readonly requests = { in: 0, out: 0, flush: 0, getId: 0, discard: 0, writeZeroes: 0 };
  readBytes = 0;
  writeBytes = 0;
  discardBytes = 0;
  writeZeroesBytes = 0;
  readonly status = { ok: 0, ioerr: 0, unsupp: 0 };
  readonly faults: Record<BlkFault, number> = Object.fromEntries(BLK_FAULTS.map((f) => [f, 0])) as Record<BlkFault, number>;
  invalidRequests = 0;
  inFlight = 0;
  maxInFlight = 0;
  ringErrors = 0;
  needsReset = 0;
  droppedAfterReset = 0;
  notifications = 0;
  interrupts = 0;
  configWrites = 0;
  ignoredConfigWrites = 0;

  /** Records a fault (and, for guest faults, an invalid request). */
  fault(fault: BlkFault): void {
    this.faults[fault]++;
    if (fault !== 'BACKEND_ERROR') this.invalidRequests++;
  }

  toJSON(): Record<string, unknown> {
    return {
      requests: { ...this.requests },
      readBytes: this.readBytes,
      writeBytes: this.writeBytes,
      discardBytes: this.discardBytes,
      writeZeroesBytes: this.writeZeroesBytes,
      status: { ...this.status },
      faults: { ...this.faults },
      invalidRequests: this.invalidRequests,
      inFlight: this.inFlight,
      maxInFlight: this.maxInFlight,
      ringErrors: this.ringErrors,
      needsReset: this.needsReset,
      droppedAfterReset: this.droppedAfterReset,
      notifications: this.notifications,
      interrupts: this.interrupts,
      configWrites: this.configWrites,
      ignoredConfigWrites: this.ignoredConfigWrites,
    };
  }
}
