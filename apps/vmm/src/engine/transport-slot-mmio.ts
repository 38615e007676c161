import { VIRTIO_MMIO_QUEUE_NOTIFY, VirtioMmioDevice, type IntxLine } from '@virtio-ts/pci';
import type { SlotOptions, TransportSlot } from './transport-slot.js';
import { VIRTIO_MMIO_WINDOW } from './layout.js';

/**
 * virtio-mmio (VIRTIO 1.3 §4.2) at `base`: one register window and one interrupt line. Every
 * queue's notification is a write of its index to QueueNotify, so the doorbells tell queues
 * apart by the written value (ioeventfd's datamatch).
 */
export function mmioSlot(options: SlotOptions & { readonly base: number; readonly line: IntxLine }): TransportSlot & { readonly mmio: VirtioMmioDevice } {
  const mmio = new VirtioMmioDevice({ device: options.device, memory: options.memory, interrupt: options.line });
  return {
    transport: 'mmio',
    mmio,
    core: mmio.core,
    windows: [
      {
        base: options.base,
        length: VIRTIO_MMIO_WINDOW,
        name: `${options.name} virtio-mmio`,
        handler: { read: (offset, size) => mmio.mmioRead(offset, size), write: (offset, size, value) => mmio.mmioWrite(offset, size, value) },
      },
    ],
    notifyAddresses() {
      return Array.from({ length: mmio.core.numQueues }, (_, queue) => ({ queue, address: options.base + VIRTIO_MMIO_QUEUE_NOTIFY, size: 4 as const, datamatch: queue }));
    },
    notifyQueue(queue) {
      mmio.mmioWrite(VIRTIO_MMIO_QUEUE_NOTIFY, 4, queue);
    },
  };
}
