import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_VERSION_1,
} from './constants.js';
import { DeviceError } from './errors.js';
import { featureBit, type Features } from './features.js';
import type { VirtioTransport } from './virtio-transport.js';

/**
 * Steps 1–6 of §3.1.1 on the driver side: reset, ACKNOWLEDGE, DRIVER, read the offered features,
 * write `supported & offered`, set FEATURES_OK and re-read it. Returns the negotiated set.
 *
 * Throws NEGOTIATION_FAILED (after setting FAILED, §3.1.1 step 6) when the device lacks
 * VIRTIO_F_VERSION_1, or refuses FEATURES_OK.
 */
export function negotiateFeatures(transport: VirtioTransport, supported: Features): Features {
  transport.reset();
  transport.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
  transport.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  const offered = transport.getDeviceFeatures();
  const version1 = featureBit(VIRTIO_F_VERSION_1);
  if ((offered & version1) === 0n) {
    transport.setStatus(transport.getStatus() | VIRTIO_CONFIG_S_FAILED);
    throw new DeviceError('NEGOTIATION_FAILED', 'device does not offer VIRTIO_F_VERSION_1 (legacy devices are not supported)', {
      deviceType: transport.deviceType,
      features: offered,
    });
  }
  const accepted = (supported | version1) & offered;
  transport.setDriverFeatures(accepted);
  transport.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  // §3.1.1 step 6: re-read device status to ensure the FEATURES_OK bit is still set.
  if ((transport.getStatus() & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
    transport.setStatus(transport.getStatus() | VIRTIO_CONFIG_S_FAILED);
    throw new DeviceError('NEGOTIATION_FAILED', 'device refused FEATURES_OK', { deviceType: transport.deviceType, features: accepted });
  }
  return accepted;
}

/** §3.1.1 step 8: sets DRIVER_OK; the device is live. */
export function setDriverOk(transport: VirtioTransport): void {
  transport.setStatus(transport.getStatus() | VIRTIO_CONFIG_S_DRIVER_OK);
}
