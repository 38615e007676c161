import { SCSI_FAULTS, type ScsiFault } from './errors.js';

/**
 * Counters of one virtio-scsi device. `toJSON()` gives this shape (all numbers):
 *
 * ```json
 * {
 *   "commands": 0, "readBytes": 0, "writeBytes": 0,
 *   "status": { "good": 0, "checkCondition": 0 },
 *   "responses": { "ok": 0, "overrun": 0, "aborted": 0, "badTarget": 0, "failure": 0 },
 *   "faults": { "HEADER_TOO_SHORT": 0, ... one key per ScsiFault },
 *   "tmf": 0, "an": 0, "eventsDelivered": 0, "eventsMissed": 0,
 *   "inFlight": 0, "maxInFlight": 0,
 *   "ringErrors": 0, "needsReset": 0, "droppedAfterReset": 0,
 *   "notifications": 0, "interrupts": 0, "configWrites": 0, "ignoredConfigWrites": 0
 * }
 * ```
 * `commands` counts commands a logical unit ran (any status); `eventsMissed` counts events
 * dropped for want of an event queue buffer (§5.6.6.3: reported with EVENTS_MISSED).
 */
export class ScsiMetrics {
  commands = 0;
  readBytes = 0;
  writeBytes = 0;
  readonly status = { good: 0, checkCondition: 0 };
  readonly responses = { ok: 0, overrun: 0, aborted: 0, badTarget: 0, failure: 0 };
  readonly faults: Record<ScsiFault, number> = Object.fromEntries(SCSI_FAULTS.map((f) => [f, 0])) as Record<ScsiFault, number>;
  tmf = 0;
  an = 0;
  eventsDelivered = 0;
  eventsMissed = 0;
  inFlight = 0;
  maxInFlight = 0;
  ringErrors = 0;
  needsReset = 0;
  droppedAfterReset = 0;
  notifications = 0;
  interrupts = 0;
  configWrites = 0;
  ignoredConfigWrites = 0;

  toJSON(): Record<string, unknown> {
    return {
      commands: this.commands,
      readBytes: this.readBytes,
      writeBytes: this.writeBytes,
      status: { ...this.status },
      responses: { ...this.responses },
      faults: { ...this.faults },
      tmf: this.tmf,
      an: this.an,
      eventsDelivered: this.eventsDelivered,
      eventsMissed: this.eventsMissed,
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
