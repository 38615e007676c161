import { GuestMemory } from '@virtio-ts/memory';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_DRIVER_OK as OK,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_RESET,
  featureBits,
  featureWord,
  VIRTIO_F_VERSION_1,
  type Features,
} from '@virtio-ts/device';
import type { DeviceQueue } from '@virtio-ts/ring';
import { describe, expect, it } from 'vitest';
import { EchoDevice } from './testing/index.js';
import { VIRTIO_PCI_LAYOUT, VirtioPciDevice } from './virtio-pci-device.js';

class RecordingDevice extends EchoDevice {
  readonly events: string[] = [];
  override queueNotify(index: number, data?: number): void {
    this.events.push(`notify ${index} ${data ?? '-'}`);
  }
  queueReset(index: number): void {
    this.events.push(`reset ${index}`);
  }
  queueEnable(index: number, queue: DeviceQueue): void {
    this.events.push(`enable ${index} ${queue.size}`);
  }
}

function live(device: VirtioPciDevice, features: Features, setupQueue = true): void {
  const w = (offset: number, size: number, value: number) => device.mmioWrite(0, offset, size, value);
  device.configWrite(0x04, 2, 0x6);
  w(0x14, 1, A | D);
  w(0x08, 4, 0);
  w(0x0c, 4, featureWord(features, 0));
  w(0x08, 4, 1);
  w(0x0c, 4, featureWord(features, 1));
  w(0x14, 1, A | D | F);
  if (setupQueue) {
    w(0x16, 2, 0);
    w(0x18, 2, 16);
    w(0x20, 8, 0x10000);
    w(0x28, 8, 0x11000);
    w(0x30, 8, 0x12000);
    w(0x1c, 2, 1);
  }
  w(0x14, 1, A | D | F | OK);
}

function make(device: EchoDevice, notifier?: { notify(index: number, data?: number): void }) {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  return new VirtioPciDevice({ device, memory, notifier });
}

describe('VirtioPciDevice notifications', () => {
  it('4.1.5.2: with VIRTIO_F_NOTIFICATION_DATA a 32-bit notify carries next_off/wrap to the device', () => {
    const echo = new RecordingDevice({ features: featureBits(VIRTIO_F_NOTIFICATION_DATA), queueSizes: [16] });
    const pci = make(echo);
    live(pci, featureBits(VIRTIO_F_VERSION_1, VIRTIO_F_NOTIFICATION_DATA));
    pci.mmioWrite(0, VIRTIO_PCI_LAYOUT.notifyOffset, 4, (0x8005 << 16) | 0);
    pci.mmioWrite(0, VIRTIO_PCI_LAYOUT.notifyOffset, 2, 0);
    expect(echo.events).toEqual([`notify 0 ${0x8005}`, 'notify 0 -']);
  });

  it('an injected Notifier receives validated notifications; deliverNotify reaches the device later', () => {
    const rung: number[] = [];
    const echo = new RecordingDevice({ queueSizes: [16, 16] });
    const pci = make(echo, { notify: (index) => rung.push(index) });
    live(pci, featureBits(VIRTIO_F_VERSION_1));
    pci.mmioWrite(0, pci.notifyLocation(0).offset, 2, 0);
    pci.mmioWrite(0, pci.notifyLocation(1).offset, 2, 1); // queue 1 is not enabled: not rung
    expect(rung).toEqual([0]);
    expect(echo.events).toEqual([]);
    pci.core.deliverNotify(0);
    expect(echo.events).toEqual(['notify 0 -']);
    pci.mmioWrite(0, 0x14, 1, 0); // reset: a late doorbell is dropped
    pci.core.deliverNotify(0);
    expect(echo.events).toEqual(['notify 0 -']);
  });
});

describe('VirtioPciDevice queue reset (VIRTIO_F_RING_RESET)', () => {
  it('4.1.4.3.1: queue_reset resets the queue, then reads 0 with queue_enable 0; the queue can be re-enabled', () => {
    const echo = new RecordingDevice({ features: featureBits(VIRTIO_F_RING_RESET), queueSizes: [16] });
    const pci = make(echo);
    live(pci, featureBits(VIRTIO_F_VERSION_1, VIRTIO_F_RING_RESET));
    const r = (offset: number, size: number) => pci.mmioRead(0, offset, size);
    const w = (offset: number, size: number, value: number) => pci.mmioWrite(0, offset, size, value);
    expect(r(0x1c, 2)).toBe(1);
    expect(r(0x3a, 2)).toBe(0);
    w(0x3a, 2, 1);
    expect(r(0x3a, 2)).toBe(0);
    expect(r(0x1c, 2)).toBe(0);
    expect(r(0x18, 2)).toBe(16);
    expect(r(0x20, 8)).toBe(0);
    w(0x18, 2, 8);
    w(0x20, 8, 0x20000);
    w(0x28, 8, 0x21000);
    w(0x30, 8, 0x22000);
    w(0x1c, 2, 1);
    expect(echo.events).toEqual(['reset 0', 'enable 0 8']);
  });

  it('queue_reset without VIRTIO_F_RING_RESET negotiated is ignored', () => {
    const echo = new RecordingDevice({ features: featureBits(VIRTIO_F_RING_RESET), queueSizes: [16] });
    const pci = make(echo);
    live(pci, featureBits(VIRTIO_F_VERSION_1));
    pci.mmioWrite(0, 0x3a, 2, 1);
    expect(pci.mmioRead(0, 0x1c, 2)).toBe(1);
    expect(pci.core.lastError?.code).toBe('UNSUPPORTED');
  });
});

describe('VirtioPciDevice access widths (§4.1.3.1)', () => {
  it('common_cfg takes natural widths; 64-bit fields as halves or one 8-byte access; the device config any width', () => {
    const echo = new EchoDevice({ queueSizes: [16] });
    const pci = make(echo);
    pci.configWrite(0x04, 2, 0x2);
    const errors = pci.core.errorCount;
    expect(pci.mmioRead(0, 0x12, 2)).toBe(1);
    expect(pci.mmioRead(0, 0x12, 1)).toBe(0); // num_queues is 16-bit
    expect(pci.mmioRead(0, 0x16, 4)).toBe(0); // queue_select + queue_size as one dword
    expect(pci.mmioRead(0, 0x22, 8)).toBe(0); // unaligned 8-byte
    pci.mmioWrite(0, 0x24, 4, 0x1);
    pci.mmioWrite(0, 0x20, 4, 0x2000);
    expect(pci.mmioRead(0, 0x20, 8)).toBe(0x1_0000_2000);
    expect(pci.core.errorCount).toBe(errors + 3);
    // Device-specific configuration: byte-addressable.
    pci.mmioWrite(0, VIRTIO_PCI_LAYOUT.deviceOffset + 4, 4, 0x04030201);
    expect(pci.mmioRead(0, VIRTIO_PCI_LAYOUT.deviceOffset + 5, 1)).toBe(2);
    expect(pci.mmioRead(0, VIRTIO_PCI_LAYOUT.deviceOffset + 6, 2)).toBe(0x0403);
    expect(pci.mmioRead(0, VIRTIO_PCI_LAYOUT.deviceOffset, 8)).toBe(0x04030201 * 2 ** 32);
    // ISR: one byte at its offset.
    expect(pci.mmioRead(0, VIRTIO_PCI_LAYOUT.isrOffset + 1, 1)).toBe(0);
    expect(pci.core.lastError?.code).toBe('INVALID_ACCESS');
  });
});

describe('VirtioPciDevice resets', () => {
  it('4.1.4.5: a device reset clears ISR status and deasserts INTx', () => {
    const echo = new EchoDevice({ queueSizes: [16] });
    const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
    const line = { level: false };
    const pci = new VirtioPciDevice({ device: echo, memory, intx: { setLevel: (l) => (line.level = l) } });
    live(pci, featureBits(VIRTIO_F_VERSION_1));
    echo.bumpConfig();
    expect(line.level).toBe(true);
    pci.mmioWrite(0, 0x14, 1, 0);
    expect(line.level).toBe(false);
    expect(pci.isrStatus).toBe(0);
  });

  it('pciReset returns command, BARs and MSI-X to their power-on state and resets the device', () => {
    const echo = new EchoDevice({ queueSizes: [16] });
    const pci = make(echo);
    pci.configWrite(0x10, 4, 0xfe00_0000);
    pci.configWrite(0x98, 2, 0x8000);
    live(pci, featureBits(VIRTIO_F_VERSION_1));
    expect(echo.context).toBeDefined();
    pci.pciReset();
    expect(echo.context).toBeUndefined();
    expect(pci.configRead(0x04, 2)).toBe(0);
    expect(pci.configRead(0x10, 4)).toBe(0x4);
    expect(pci.configRead(0x9a, 2) & 0xc000).toBe(0);
    expect(pci.msix.isMasked(0)).toBe(true);
    expect(pci.core.status).toBe(0);
  });
});
