import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
} from './constants.js';
import { DeviceError } from './errors.js';
import { featureBit, type Features } from './features.js';

/** The four initialization bits in the order §3.1.1 sets them. */
const PROGRESS_MASK = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
/** The prefixes of §3.1.1: 0, A, A|D, A|D|F, A|D|F|OK. Any other combination skips a step. */
const VALID_PROGRESS = new Set([
  0,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
  PROGRESS_MASK,
]);
const DRIVER_WRITABLE = PROGRESS_MASK | VIRTIO_CONFIG_S_FAILED;

/** What a `device_status` write did. */
export interface StatusWriteResult {
  /** The write was 0: the device must reset (§2.4). */
  readonly reset: boolean;
  /** FEATURES_OK was newly requested: true when it stuck, false when refused, undefined otherwise. */
  readonly featuresAccepted: boolean | undefined;
  /** DRIVER_OK was newly set: the device must activate. */
  readonly activate: boolean;
  /** Why (part of) the write was refused, for the transport's error log. */
  readonly error: DeviceError | undefined;
}

/** Feature policy of a device, checked when the driver sets FEATURES_OK. */
export interface FeaturePolicy {
  /** Features the device offers. */
  readonly offered: Features;
  /** Features the driver must accept (VERSION_1 is always added). */
  readonly required?: Features;
  /** Device-specific check of the driver's set; false (or a throw) refuses FEATURES_OK. */
  readonly validate?: (features: Features) => boolean;
}

/**
 * The device status field and feature negotiation of VIRTIO 1.3 §2.1, §2.2 and §3.1, device side,
 * with no queues attached (see {@link DeviceCore} for those).
 *
 * - The driver walks ACKNOWLEDGE → DRIVER → FEATURES_OK → DRIVER_OK, one or more bits per write;
 *   a write that skips a step or clears a bit (other than writing 0) is refused whole
 *   (§2.1.1: "The driver MUST NOT clear a device status bit").
 * - FEATURES_OK does not stick when the driver's features contain one not offered, lack a
 *   required one or lack VIRTIO_F_VERSION_1 (§2.2.1: "the device MUST NOT accept ... and MUST
 *   NOT set the FEATURES_OK bit"); the other bits of that write do.
 * - driver_feature writes are taken only between DRIVER and FEATURES_OK (§3.1.1 steps 4–5).
 * - DEVICE_NEEDS_RESET is the device's bit (writes of it are ignored); FAILED may be set by the
 *   driver at any time and then only a reset changes the status.
 * - Writing 0 resets everything (§2.4.1).
 */
export class DeviceStatusMachine {
  private statusValue = 0;
  private driverFeaturesValue: Features = 0n;
  private negotiated: Features = 0n;
  private readonly required: Features;

  constructor(private readonly policy: FeaturePolicy) {
    this.required = (policy.required ?? 0n) | featureBit(VIRTIO_F_VERSION_1);
  }

  /** The device_status byte the driver reads. */
  get status(): number {
    return this.statusValue;
  }

  /** The features the driver wrote (may include invalid bits until FEATURES_OK checks them). */
  get driverFeatures(): Features {
    return this.driverFeaturesValue;
  }

  /** The accepted feature set once FEATURES_OK stuck, otherwise 0n. */
  get negotiatedFeatures(): Features {
    return this.negotiated;
  }

  /** True when FEATURES_OK is set. */
  get featuresOk(): boolean {
    return (this.statusValue & VIRTIO_CONFIG_S_FEATURES_OK) !== 0;
  }

  /** True when DRIVER_OK is set and neither NEEDS_RESET nor FAILED is. */
  get live(): boolean {
    return (this.statusValue & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) === VIRTIO_CONFIG_S_DRIVER_OK;
  }

  /** A driver_feature write; returns an error (and ignores the write) outside DRIVER..FEATURES_OK. */
  writeDriverFeatures(features: Features): DeviceError | undefined {
    const s = this.statusValue;
    if ((s & VIRTIO_CONFIG_S_DRIVER) === 0 || (s & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_FAILED)) !== 0) {
      return new DeviceError('FEATURES_WRITE_IGNORED', 'driver_feature is writable only after DRIVER and before FEATURES_OK', { status: s });
    }
    this.driverFeaturesValue = BigInt.asUintN(64, features);
    return undefined;
  }

  /** A device_status write by the driver. */
  writeStatus(value: number): StatusWriteResult {
    const v = value & 0xff;
    if (v === 0) {
      this.reset();
      return { reset: true, featuresAccepted: undefined, activate: false, error: undefined };
    }
    const old = this.statusValue;
    const refuse = (message: string): StatusWriteResult => ({
      reset: false,
      featuresAccepted: undefined,
      activate: false,
      error: new DeviceError('INVALID_STATUS_TRANSITION', message, { status: v }),
    });
    if ((old & VIRTIO_CONFIG_S_FAILED) !== 0) return refuse('the driver set FAILED: only a reset (0) changes the status');
    const written = v & ~VIRTIO_CONFIG_S_NEEDS_RESET;
    if ((written & ~DRIVER_WRITABLE) !== 0) return refuse('reserved device status bits');
    if ((written & VIRTIO_CONFIG_S_FAILED) !== 0) {
      this.statusValue = old | VIRTIO_CONFIG_S_FAILED;
      return { reset: false, featuresAccepted: undefined, activate: false, error: undefined };
    }
    const before = old & PROGRESS_MASK;
    let after = written & PROGRESS_MASK;
    if ((before & ~after) !== 0) return refuse('the driver MUST NOT clear a device status bit (§2.1.1)');
    if (!VALID_PROGRESS.has(after)) return refuse('device status bits set out of the order of §3.1.1');
    let featuresAccepted: boolean | undefined;
    let error: DeviceError | undefined;
    if ((after & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (before & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      const problem = this.featureProblem(this.driverFeaturesValue);
      featuresAccepted = problem === undefined;
      if (problem === undefined) {
        this.negotiated = this.driverFeaturesValue;
      } else {
        // §2.2.1: FEATURES_OK does not stick; nor can DRIVER_OK in the same write.
        after &= ~(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
        error = new DeviceError('FEATURES_NOT_ACCEPTED', problem, { features: this.driverFeaturesValue });
      }
    }
    const activate = (after & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (before & VIRTIO_CONFIG_S_DRIVER_OK) === 0;
    this.statusValue = after | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
    return { reset: false, featuresAccepted, activate, error };
  }

  /** The device sets DEVICE_NEEDS_RESET (§2.1.2). Returns true when the bit was newly set. */
  markNeedsReset(): boolean {
    if ((this.statusValue & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) return false;
    this.statusValue |= VIRTIO_CONFIG_S_NEEDS_RESET;
    return true;
  }

  /**
   * Restores a saved status and feature set (a snapshot, untrusted). Returns why it cannot be
   * restored — a status this machine could not have reached, or FEATURES_OK with features it
   * would have refused — or undefined after restoring.
   */
  restore(status: number, driverFeatures: Features): string | undefined {
    if (!Number.isInteger(status) || status < 0 || status > 0xff) return 'status must be a byte';
    if ((status & ~(DRIVER_WRITABLE | VIRTIO_CONFIG_S_NEEDS_RESET)) !== 0) return 'status has reserved bits';
    if (!VALID_PROGRESS.has(status & PROGRESS_MASK)) return 'status bits are not a prefix of §3.1.1';
    const features = BigInt.asUintN(64, driverFeatures);
    if (features !== driverFeatures) return 'driver features must be a 64-bit mask';
    const featuresOk = (status & VIRTIO_CONFIG_S_FEATURES_OK) !== 0;
    if (featuresOk) {
      const problem = this.featureProblem(features);
      if (problem !== undefined) return `FEATURES_OK with features the device refuses: ${problem}`;
    }
    this.statusValue = status;
    this.driverFeaturesValue = features;
    this.negotiated = featuresOk ? features : 0n;
    return undefined;
  }

  /** Back to the initial state (§2.4). */
  reset(): void {
    this.statusValue = 0;
    this.driverFeaturesValue = 0n;
    this.negotiated = 0n;
  }

  private featureProblem(features: Features): string | undefined {
    const unoffered = features & ~this.policy.offered;
    if (unoffered !== 0n) return `driver accepted features the device did not offer (0x${unoffered.toString(16)})`;
    const missing = this.required & ~features;
    if (missing !== 0n) return `driver did not accept required features (0x${missing.toString(16)}; VIRTIO_F_VERSION_1 is always required)`;
    if (this.policy.validate !== undefined) {
      let ok: boolean;
      try {
        ok = this.policy.validate(features);
      } catch {
        ok = false;
      }
      if (!ok) return 'the device refused this feature combination';
    }
    return undefined;
  }
}
