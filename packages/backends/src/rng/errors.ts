/**
 * Guest faults of the virtio-rng device. Reported to the guest as a used length of 0 and counted
 * in {@link RngMetrics}; never thrown. Host-side errors are `BackendError`s.
 */
export type RngFault =
  /** A chain with a device-readable buffer (§5.4.6.1: the driver MUST NOT). */
  | 'READABLE_BUFFER'
  /** A chain without a single device-writable byte. */
  | 'EMPTY_BUFFER';
