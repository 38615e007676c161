export * from './constants.js';
export { PciError, type PciErrorCode, type PciErrorContext } from './errors.js';
export type { AccessSize, AddressSpaceAllocator, IntxLine, MmioAccessor, MsiController, MsiSink, PciConfigAccessor } from './platform.js';
export { MsixTable, MAX_MSIX_VECTORS } from './msix.js';
export { VirtioPciDevice, VIRTIO_PCI_LAYOUT, defaultClassCode, type VirtioPciDeviceOptions, type VirtioPciDeviceState } from './virtio-pci-device.js';
export { VirtioPciTransport, type VirtioPciTransportOptions, type VirtioStructure } from './virtio-pci-transport.js';
export { PciBus, DirectMsiController, BumpAddressSpaceAllocator } from './pci-bus.js';
export { VirtioMmioDevice, VIRTIO_MMIO_WINDOW_SIZE, type VirtioMmioDeviceOptions, type VirtioMmioDeviceState } from './virtio-mmio-device.js';
export { VirtioMmioTransport, type VirtioMmioTransportOptions } from './virtio-mmio-transport.js';
