/**
 * Counters of one virtio-rng device. `toJSON()` shape:
 *
 * ```json
 * { "requests": 0, "bytes": 0, "throttled": 0, "readableBuffers": 0, "emptyBuffers": 0,
 *   "ringErrors": 0, "needsReset": 0, "notifications": 0, "interrupts": 0 }
 * ```
 * `requests`/`bytes`: buffers filled and random bytes delivered; `throttled`: times a request
 * waited for the rate limiter; `readableBuffers`: chains with device-readable buffers (§5.4.6.1:
 * MUST NOT), returned with length 0; `emptyBuffers`: chains with no writable byte.
 */
export class RngMetrics {
  requests = 0;
  bytes = 0;
  throttled = 0;
  readableBuffers = 0;
  emptyBuffers = 0;
  ringErrors = 0;
  needsReset = 0;
  notifications = 0;
  interrupts = 0;

  toJSON(): Record<string, number> {
    return {
      requests: this.requests,
      bytes: this.bytes,
      throttled: this.throttled,
      readableBuffers: this.readableBuffers,
      emptyBuffers: this.emptyBuffers,
      ringErrors: this.ringErrors,
      needsReset: this.needsReset,
      notifications: this.notifications,
      interrupts: this.interrupts,
    };
  }
}
