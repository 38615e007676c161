import { CONSOLE_FAULTS, type ConsoleFault } from './errors.js';

/**
 * Counters of one virtio-console device. `toJSON()` shape:
 *
 * ```json
 * { "receivedBytes": 0, "transmittedBytes": 0, "inputDropped": 0, "controlSent": 0,
 *   "controlReceived": 0, "controlDropped": 0, "emergencyWrites": 0,
 *   "faults": { "READABLE_IN_RECEIVEQ": 0, ... one key per ConsoleFault },
 *   "ringErrors": 0, "needsReset": 0, "notifications": 0, "interrupts": 0 }
 * ```
 * `receivedBytes`: host input delivered to the guest; `transmittedBytes`: guest output given to
 * the backends; `inputDropped`: host input bytes dropped because the port's buffer was full;
 * `controlDropped`: device control messages dropped because too many were pending.
 */
export class ConsoleMetrics {
  receivedBytes = 0;
  transmittedBytes = 0;
  inputDropped = 0;
  controlSent = 0;
  controlReceived = 0;
  controlDropped = 0;
  emergencyWrites = 0;
  readonly faults: Record<ConsoleFault, number> = Object.fromEntries(CONSOLE_FAULTS.map((f) => [f, 0])) as Record<ConsoleFault, number>;
  ringErrors = 0;
  needsReset = 0;
  notifications = 0;
  interrupts = 0;

  toJSON(): Record<string, unknown> {
    return {
      receivedBytes: this.receivedBytes,
      transmittedBytes: this.transmittedBytes,
      inputDropped: this.inputDropped,
      controlSent: this.controlSent,
      controlReceived: this.controlReceived,
      controlDropped: this.controlDropped,
      emergencyWrites: this.emergencyWrites,
      faults: { ...this.faults },
      ringErrors: this.ringErrors,
      needsReset: this.needsReset,
      notifications: this.notifications,
      interrupts: this.interrupts,
    };
  }
}
