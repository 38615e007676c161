import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_DRIVER_OK as OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
} from './constants.js';
import { featureBits } from './features.js';
import { DeviceStatusMachine } from './status-machine.js';

const OFFERED = featureBits(VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, 0, 5);
const REQUIRED = featureBits(5);

/** An independent model: a stage number 0..4 along §3.1.1 plus the FAILED and NEEDS_RESET flags. */
class Model {
  stage = 0;
  failed = false;
  needsReset = false;
  features = 0n;
  negotiated = 0n;
  activations = 0;
  static readonly stages = [0, A, A | D, A | D | F, A | D | F | OK];

  get status(): number {
    return Model.stages[this.stage]! | (this.failed ? VIRTIO_CONFIG_S_FAILED : 0) | (this.needsReset ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
  }
  write(v: number): void {
    if (v === 0) {
      Object.assign(this, { stage: 0, failed: false, needsReset: false, features: 0n, negotiated: 0n });
      return;
    }
    if (this.failed || (v & 0x30) !== 0) return;
    if ((v & 0x80) !== 0) {
      this.failed = true;
      return;
    }
    const wanted = Model.stages.indexOf(v & 0x0f);
    if (wanted < 0 || wanted < this.stage) return;
    if (this.stage < 3 && wanted >= 3) {
      const ok = (this.features & ~OFFERED) === 0n && (this.features & (REQUIRED | featureBits(VIRTIO_F_VERSION_1))) === (REQUIRED | featureBits(VIRTIO_F_VERSION_1));
      if (!ok) {
        this.stage = 2;
        return;
      }
      this.negotiated = this.features;
    }
    if (this.stage < 4 && wanted === 4) this.activations++;
    this.stage = wanted;
  }
  writeFeatures(f: bigint): void {
    if (this.stage === 2 && !this.failed) this.features = f;
  }
}

describe('DeviceStatusMachine', () => {
  it('follows the §2.1/§3.1.1 model for any sequence of driver writes and device errors', () => {
    const statusValue = fc.oneof(
      fc.constantFrom(0, A, A | D, A | D | F, A | D | F | OK, A | D | OK, D, F, OK, A | F, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_NEEDS_RESET | A | D),
      fc.integer({ min: 0, max: 255 }),
    );
    const featureValue = fc.oneof(
      fc.constantFrom(OFFERED, REQUIRED | featureBits(VIRTIO_F_VERSION_1), featureBits(VIRTIO_F_VERSION_1), OFFERED | featureBits(40), REQUIRED),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    );
    const command = fc.oneof(
      statusValue.map((v) => ({ kind: 'status' as const, v })),
      featureValue.map((f) => ({ kind: 'features' as const, f })),
      fc.constant({ kind: 'needsReset' as const }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 40 }), (commands) => {
        const machine = new DeviceStatusMachine({ offered: OFFERED, required: REQUIRED });
        const model = new Model();
        let activations = 0;
        for (const c of commands) {
          if (c.kind === 'status') {
            const result = machine.writeStatus(c.v);
            if (result.activate) activations++;
            model.write(c.v);
          } else if (c.kind === 'features') {
            machine.writeDriverFeatures(c.f);
            model.writeFeatures(c.f);
          } else {
            machine.markNeedsReset();
            model.needsReset = true;
          }
          expect(machine.status).toBe(model.status);
          expect(machine.negotiatedFeatures).toBe(model.negotiated);
          expect(activations).toBe(model.activations);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('2.2.1: FEATURES_OK does not stick when the driver accepts a feature the device did not offer', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED });
    m.writeStatus(A);
    m.writeStatus(A | D);
    m.writeDriverFeatures(OFFERED | featureBits(40));
    const r = m.writeStatus(A | D | F);
    expect(r.featuresAccepted).toBe(false);
    expect(r.error?.code).toBe('FEATURES_NOT_ACCEPTED');
    expect(m.status).toBe(A | D);
  });

  it('2.2.1: FEATURES_OK does not stick without VIRTIO_F_VERSION_1 (modern only) or without a required feature', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED, required: REQUIRED });
    m.writeStatus(A | D);
    m.writeDriverFeatures(REQUIRED);
    expect(m.writeStatus(A | D | F).featuresAccepted).toBe(false);
    m.writeDriverFeatures(featureBits(VIRTIO_F_VERSION_1));
    expect(m.writeStatus(A | D | F).featuresAccepted).toBe(false);
    m.writeDriverFeatures(REQUIRED | featureBits(VIRTIO_F_VERSION_1));
    expect(m.writeStatus(A | D | F).featuresAccepted).toBe(true);
    expect(m.status).toBe(A | D | F);
  });

  it('2.2.1: a device-specific validate hook that refuses (or throws) keeps FEATURES_OK clear', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED, validate: () => { throw new Error('boom'); } });
    m.writeStatus(A | D);
    m.writeDriverFeatures(featureBits(VIRTIO_F_VERSION_1));
    expect(m.writeStatus(A | D | F | OK)).toMatchObject({ featuresAccepted: false, activate: false });
    expect(m.status).toBe(A | D);
  });

  it('2.1.1: "The driver MUST NOT clear a device status bit": such a write is refused', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED });
    m.writeStatus(A | D);
    const r = m.writeStatus(A);
    expect(r.error?.code).toBe('INVALID_STATUS_TRANSITION');
    expect(m.status).toBe(A | D);
  });

  it('3.1.1: DRIVER before ACKNOWLEDGE and DRIVER_OK before FEATURES_OK are refused', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED });
    expect(m.writeStatus(D).error?.code).toBe('INVALID_STATUS_TRANSITION');
    expect(m.status).toBe(0);
    m.writeStatus(A | D);
    expect(m.writeStatus(A | D | OK).activate).toBe(false);
    expect(m.status).toBe(A | D);
  });

  it('2.1.2: DEVICE_NEEDS_RESET is device-owned; the driver writing it back neither sets nor clears it', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED });
    m.writeStatus(A | VIRTIO_CONFIG_S_NEEDS_RESET);
    expect(m.status).toBe(A);
    expect(m.markNeedsReset()).toBe(true);
    expect(m.markNeedsReset()).toBe(false);
    m.writeStatus(A | D);
    expect(m.status).toBe(A | D | VIRTIO_CONFIG_S_NEEDS_RESET);
    m.writeStatus(0);
    expect(m.status).toBe(0);
  });

  it('3.1.1: driver_feature writes outside DRIVER..FEATURES_OK are ignored', () => {
    const m = new DeviceStatusMachine({ offered: OFFERED });
    expect(m.writeDriverFeatures(OFFERED)?.code).toBe('FEATURES_WRITE_IGNORED');
    expect(m.driverFeatures).toBe(0n);
    m.writeStatus(A | D);
    m.writeDriverFeatures(featureBits(VIRTIO_F_VERSION_1));
    m.writeStatus(A | D | F);
    expect(m.writeDriverFeatures(OFFERED)?.code).toBe('FEATURES_WRITE_IGNORED');
    expect(m.negotiatedFeatures).toBe(featureBits(VIRTIO_F_VERSION_1));
  });
});
