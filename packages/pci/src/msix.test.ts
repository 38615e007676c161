import { GuestMemory } from '@virtio-ts/memory';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_DRIVER_OK as OK,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  featureWord,
  featureBit,
  VIRTIO_F_VERSION_1,
} from '@virtio-ts/device';
import { describe, expect, it } from 'vitest';
import { EchoDevice } from './testing/index.js';
import { VirtioPciDevice, VIRTIO_PCI_LAYOUT } from './virtio-pci-device.js';

const MSIX_CAP = 0x98;

/** A device with memory decoding on and a recorder of MSI messages and the INTx level. */
function rig() {
  const memory = GuestMemory.create([{ guestAddress: 0, size: 1 << 20 }]);
  const echo = new EchoDevice({ queueSizes: [16, 16] });
  const messages: number[] = [];
  const intx = { level: false };
  const device = new VirtioPciDevice({
    device: echo,
    memory,
    msi: { deliver: (_address, data) => messages.push(data) },
    intx: { setLevel: (level) => (intx.level = level) },
  });
  device.configWrite(0x04, 2, 0x6); // memory space + bus master
  const common = (offset: number, size: number, value?: number) =>
    value === undefined ? device.mmioRead(0, offset, size) : device.mmioWrite(0, offset, size, value);
  const entry = (vector: number, data: number, masked: boolean) => {
    device.mmioWrite(2, vector * 16, 4, 0xfee0_0000);
    device.mmioWrite(2, vector * 16 + 4, 4, 0);
    device.mmioWrite(2, vector * 16 + 8, 4, data);
    device.mmioWrite(2, vector * 16 + 12, 4, masked ? 1 : 0);
  };
  const live = () => {
    common(0x14, 1, A);
    common(0x14, 1, A | D);
    common(0x08, 4, 1);
    common(0x0c, 4, featureWord(featureBit(VIRTIO_F_VERSION_1), 1));
    common(0x14, 1, A | D | F);
    common(0x14, 1, A | D | F | OK);
  };
  return { device, echo, messages, intx, common, entry, live };
}

describe('MSI-X', () => {
  it('PCI 3.0 §6.8.2: a masked vector sets its pending bit and is delivered on unmask', () => {
    const r = rig();
    r.device.configWrite(MSIX_CAP + 2, 2, 0x8000); // enable
    r.entry(0, 0x41, true);
    r.common(0x10, 2, 0); // config_msix_vector = 0
    r.live();
    r.echo.bumpConfig();
    expect(r.messages).toEqual([]);
    const pbaOffset = 0x800;
    expect(r.device.mmioRead(2, pbaOffset, 8) & 1).toBe(1);
    r.device.mmioWrite(2, 12, 4, 0); // unmask vector 0
    expect(r.messages).toEqual([0x41]);
    expect(r.device.mmioRead(2, pbaOffset, 4) & 1).toBe(0);
  });

  it('PCI 3.0 §6.8.2: Function Mask holds every vector pending until cleared', () => {
    const r = rig();
    r.device.configWrite(MSIX_CAP + 2, 2, 0xc000); // enable + function mask
    r.entry(0, 0x41, false);
    r.common(0x10, 2, 0);
    r.live();
    r.echo.bumpConfig();
    expect(r.messages).toEqual([]);
    r.device.configWrite(MSIX_CAP + 2, 2, 0x8000);
    expect(r.messages).toEqual([0x41]);
  });

  it('no MSI while bus mastering is disabled; the pending message goes out when it is enabled', () => {
    const r = rig();
    r.device.configWrite(MSIX_CAP + 2, 2, 0x8000);
    r.entry(0, 0x41, false);
    r.common(0x10, 2, 0);
    r.live();
    r.device.configWrite(0x04, 2, 0x2); // memory only
    r.echo.bumpConfig();
    expect(r.messages).toEqual([]);
    r.device.configWrite(0x04, 2, 0x6);
    expect(r.messages).toEqual([0x41]);
  });

  it('4.1.5.1.2: NO_VECTOR means no interrupt; a vector past the table reads back NO_VECTOR', () => {
    const r = rig();
    r.device.configWrite(MSIX_CAP + 2, 2, 0x8000);
    r.entry(0, 0x41, false);
    r.common(0x10, 2, 0xffff);
    r.common(0x16, 2, 1);
    r.common(0x1a, 2, 3); // table has 3 entries (2 queues + config): 3 is out of range
    expect(r.common(0x1a, 2)).toBe(0xffff);
    r.common(0x1a, 2, 2);
    expect(r.common(0x1a, 2)).toBe(2);
    r.live();
    r.echo.bumpConfig();
    expect(r.messages).toEqual([]);
    // Reset unmaps every event (§4.1.5.1.2).
    r.common(0x14, 1, 0);
    r.common(0x16, 2, 1);
    expect(r.common(0x1a, 2)).toBe(0xffff);
  });

  it('4.1.4.5: with MSI-X disabled, INTx follows ISR; reading ISR clears it and deasserts the line', () => {
    const r = rig();
    r.live();
    r.echo.bumpConfig();
    expect(r.intx.level).toBe(true);
    expect(r.device.configRead(0x06, 2) & 0x08, 'status: interrupt').toBe(0x08);
    expect(r.device.mmioRead(0, VIRTIO_PCI_LAYOUT.isrOffset, 1)).toBe(2);
    expect(r.intx.level).toBe(false);
    expect(r.device.mmioRead(0, VIRTIO_PCI_LAYOUT.isrOffset, 1)).toBe(0);
    // INTx Disable in the command register keeps the line low.
    r.device.configWrite(0x04, 2, 0x406);
    r.echo.bumpConfig();
    expect(r.intx.level).toBe(false);
    r.device.configWrite(0x04, 2, 0x006);
    expect(r.intx.level).toBe(true);
  });

  it('4.1.4.5: "The device MUST set the Device Configuration Interrupt bit in ISR status before sending a device configuration change notification" (MSI-X too)', () => {
    const r = rig();
    r.device.configWrite(MSIX_CAP + 2, 2, 0x8000);
    r.entry(0, 0x41, false);
    r.common(0x10, 2, 0);
    r.live();
    r.echo.bumpConfig();
    expect(r.messages).toEqual([0x41]);
    expect(r.device.isrStatus & 2).toBe(2);
    expect(r.intx.level, 'no INTx while MSI-X is enabled').toBe(false);
  });
});

describe('PCI command register and the PCI_CFG window', () => {
  it('BAR accesses with memory space disabled read all ones and are not delivered', () => {
    const r = rig();
    r.device.configWrite(0x04, 2, 0x0);
    expect(r.device.mmioRead(0, 0x12, 2)).toBe(0xffff);
    r.device.mmioWrite(0, 0x14, 1, A);
    r.device.configWrite(0x04, 2, 0x2);
    expect(r.device.mmioRead(0, 0x14, 1)).toBe(0);
    expect(r.device.core.lastError?.code).toBe('INVALID_ACCESS');
  });

  it('4.1.4.9: the VIRTIO_PCI_CAP_PCI_CFG window reads and writes BAR registers through configuration space', () => {
    const r = rig();
    r.device.configWrite(0x04, 2, 0x0); // the window works without memory decoding
    const cap = 0x84;
    r.device.configWrite(cap + 4, 1, 0); // bar 0
    r.device.configWrite(cap + 12, 4, 2); // length 2
    r.device.configWrite(cap + 8, 4, 0x12); // num_queues
    expect(r.device.configRead(cap + 16, 4) & 0xffff).toBe(2);
    r.device.configWrite(cap + 12, 4, 1);
    r.device.configWrite(cap + 8, 4, 0x14); // device_status
    r.device.configWrite(cap + 16, 1, A);
    expect(r.device.core.status).toBe(A);
    // An unaligned window is refused: "The driver MUST NOT write a cap.offset which is not a multiple of cap.length".
    r.device.configWrite(cap + 12, 4, 4);
    r.device.configWrite(cap + 8, 4, 0x13);
    expect(r.device.configRead(cap + 16, 4)).toBe(0);
    expect(r.device.core.lastError?.code).toBe('INVALID_ACCESS');
  });
});
