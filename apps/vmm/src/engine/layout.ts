/**
 * The model guest's physical address map (above RAM, which starts at 0 and ends at most at 2 GiB):
 *
 * | range                     | what                                                  |
 * |---------------------------|-------------------------------------------------------|
 * | 0xC000_0000 – 0xCFFF_FFFF | PCI memory window: BARs, placed by the guest's kernel |
 * | 0xD000_0000 – 0xD00F_FFFF | virtio-mmio windows, 4 KiB each                       |
 * | 0xD010_0000 – 0xD010_0FFF | platform control (workload boundaries, see below)     |
 * | 0xE000_0000 – 0xE00F_FFFF | PCI ECAM (bus 0): 32 slots × 8 functions × 4 KiB      |
 * | 0xFEE0_0000 – 0xFEEF_FFFF | MSI address window (not memory: the interrupt bus)    |
 */
export const PCI_MMIO_BASE = 0xc000_0000;
export const PCI_MMIO_SIZE = 0x1000_0000;
export const VIRTIO_MMIO_BASE = 0xd000_0000;
export const VIRTIO_MMIO_WINDOW = 0x1000;
export const ECAM_BASE = 0xe000_0000;
/** Bus 0 only: device d, function 0 sits at ECAM_BASE + d << 15. */
export const ECAM_SIZE = 0x10_0000;
export const ECAM_SLOT_STRIDE = 0x8000;
/** Slots on bus 0 (PCI device numbers 0..31). */
export const PCI_SLOTS = 32;
/** The first MiB of RAM is left unused (a real-mode legacy, and it catches null DMA addresses). */
export const RAM_RESERVED_LOW = 0x10_0000;

/**
 * The platform control window: a paravirtual register page (like QEMU's isa-debug-exit). The
 * guest writes a workload's index to WORKLOAD_BEGIN before it starts and to WORKLOAD_END after it
 * ends. These are synchronous exits, so the VMM sees exactly which backing-store requests belong
 * to which workload.
 */
export const PLATFORM_CONTROL_BASE = 0xd010_0000;
export const PLATFORM_CONTROL_SIZE = 0x1000;
export const WORKLOAD_BEGIN = 0x0;
export const WORKLOAD_END = 0x4;
