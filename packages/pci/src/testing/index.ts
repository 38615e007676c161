// Test helpers of @virtio-ts/pci, exported as `@virtio-ts/pci/testing`.
export { EchoDevice, ECHO_DEVICE_ID } from './echo-device.js';
export { createPciHarness, createMmioHarness, HARNESS_RAM_SIZE, MMIO_BASE, type PciHarness, type MmioHarness } from './harness.js';
