// HOSTILE-INPUTS.md: a guest driver that breaks every rule. Nothing may throw out of
// configRead/configWrite/mmioRead/mmioWrite; the device records the error or goes to NEEDS_RESET,
// and a well-behaved driver can still reset it and use it afterwards.
import fc from 'fast-check';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as A,
  VIRTIO_CONFIG_S_DRIVER as D,
  VIRTIO_CONFIG_S_FEATURES_OK as F,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  featureBits,
  negotiateFeatures,
  setDriverOk,
  VIRTIO_RING_F_EVENT_IDX,
  type VirtioTransport,
} from '@virtio-ts/device';
import type { GuestMemory } from '@virtio-ts/memory';
import { describe, expect, it } from 'vitest';
import { BumpAddressSpaceAllocator } from './pci-bus.js';
import { VIRTIO_PCI_LAYOUT } from './virtio-pci-device.js';
import { VirtioPciTransport } from './virtio-pci-transport.js';
import { EchoDevice, createMmioHarness, createPciHarness } from './testing/index.js';

const NOTIFY = VIRTIO_PCI_LAYOUT.notifyOffset;
const DEVICE_CFG = VIRTIO_PCI_LAYOUT.deviceOffset;

function pci() {
  const echo = new EchoDevice({ queueSizes: [16, 16] });
  const h = createPciHarness(echo);
  const common = (offset: number, size: number, value?: number): number => {
    if (value === undefined) return h.device.mmioRead(0, offset, size);
    h.device.mmioWrite(0, offset, size, value);
    return 0;
  };
  return { echo, h, common, core: h.device.core };
}

/** Runs a full, correct driver session over `transport` and checks the echo. */
function wellBehaved(transport: VirtioTransport, memory: GuestMemory, service: () => void): void {
  negotiateFeatures(transport, featureBits(VIRTIO_RING_F_EVENT_IDX));
  const queue = transport.setupQueue<string>(0, { size: 8 });
  setDriverOk(transport);
  const buffer = transport.allocator.allocate(64, 16);
  memory.write(buffer, Uint8Array.from({ length: 32 }, (_, i) => i));
  queue.add([{ address: buffer, length: 32 }], [{ address: buffer + 32, length: 32 }], 'ok');
  if (queue.kickPrepare()) transport.notify(0);
  service();
  expect(queue.getUsed()).toEqual({ token: 'ok', length: 32 });
  const back = new Uint8Array(32);
  memory.read(buffer + 32, back);
  expect([...back]).toEqual(Array.from({ length: 32 }, (_, i) => i));
}

describe('hostile driver: virtio-pci device side', () => {
  it('3.1.1: status bits out of order are refused and recorded', () => {
    const { common, core } = pci();
    common(0x14, 1, 0);
    common(0x14, 1, D);
    expect(common(0x14, 1)).toBe(0);
    common(0x14, 1, A | F); // skips DRIVER
    expect(common(0x14, 1)).toBe(0);
    expect(core.lastError?.code).toBe('INVALID_STATUS_TRANSITION');
    common(0x14, 1, A | D);
    common(0x14, 1, A); // clears DRIVER
    expect(common(0x14, 1)).toBe(A | D);
    expect(core.lastError?.code).toBe('INVALID_STATUS_TRANSITION');
  });

  it('2.2.1: FEATURES_OK with an unoffered feature does not stick', () => {
    const { common, core } = pci();
    common(0x14, 1, A | D);
    common(0x08, 4, 0);
    common(0x0c, 4, 1 << 20); // an unoffered low bit
    common(0x08, 4, 1);
    common(0x0c, 4, 1); // VERSION_1
    common(0x14, 1, A | D | F);
    expect(common(0x14, 1) & F).toBe(0);
    expect(core.lastError?.code).toBe('FEATURES_NOT_ACCEPTED');
  });

  it('H4: queue_enable with rings in unmapped memory or past 2^53 sets DEVICE_NEEDS_RESET', () => {
    for (const [lo, hi] of [
      [0x0, 0x1], // 4 GiB: a hole
      [0xffff_f000, 0xffff_ffff], // 2^64 - 4096
      [0x7f_fff0, 0], // crosses the end of RAM (8 MiB)
    ]) {
      const { common, core } = pci();
      common(0x14, 1, A | D);
      common(0x08, 4, 1);
      common(0x0c, 4, 1);
      common(0x14, 1, A | D | F);
      common(0x16, 2, 0);
      common(0x20, 4, lo);
      common(0x24, 4, hi);
      common(0x28, 4, 0x20000);
      common(0x30, 4, 0x21000);
      common(0x1c, 2, 1);
      expect(common(0x14, 1) & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_NEEDS_RESET);
      expect(common(0x1c, 2)).toBe(0);
      expect(core.lastError?.code).toBe('QUEUE_ADDRESS_INVALID');
    }
  });

  it('H1: notify of 0xFFFF, of num_queues, of a disabled queue, and notify reads, are harmless', () => {
    const { h, echo, core } = pci();
    wellBehaved(h.transport, h.memory, () => undefined);
    const before = echo.completed;
    const errors = core.errorCount;
    h.device.mmioWrite(0, NOTIFY + 2 * 4, 2, 2); // queue 2 = num_queues
    h.device.mmioWrite(0, NOTIFY + 1 * 4, 2, 1); // queue 1: never enabled
    h.device.mmioWrite(0, NOTIFY + 0xffff * 4, 2, 0xffff); // past the BAR
    h.device.mmioWrite(0, NOTIFY + 1, 2, 0); // not at a notify address
    expect(h.device.mmioRead(0, NOTIFY, 2)).toBe(0);
    expect(echo.completed).toBe(before);
    expect(core.errorCount).toBe(errors + 4);
  });

  it('device configuration accesses past configSize read 0 and never reach the device', () => {
    const { h, core } = pci();
    h.device.mmioWrite(0, DEVICE_CFG + 6, 4, 0xdeadbeef); // straddles the end (8 bytes)
    h.device.mmioWrite(0, DEVICE_CFG + 0x100, 4, 1);
    expect(h.device.mmioRead(0, DEVICE_CFG + 0x200, 4)).toBe(0);
    expect(core.lastError?.code).toBe('CONFIG_OUT_OF_RANGE');
    expect(h.device.mmioRead(0, DEVICE_CFG + 4, 4)).toBe(0);
  });

  it('configuration space writes and reads past 256 bytes, across dwords or of odd widths are refused', () => {
    const { h, core } = pci();
    const errors = core.errorCount;
    h.device.configWrite(0x100, 4, 0xffff_ffff);
    h.device.configWrite(0x03, 2, 0xffff);
    h.device.configWrite(0x10, 3, 0xffff_ff);
    expect(h.device.configRead(0xff, 2)).toBe(0xffff);
    expect(h.device.configRead(-4, 4)).toBe(0xffff_ffff);
    expect(core.errorCount).toBe(errors + 5);
  });

  it('MSI-X table writes out of range, of odd widths, and PBA writes are dropped', () => {
    const { h, core } = pci();
    const errors = core.errorCount;
    h.device.mmioWrite(2, 3 * 16, 4, 1); // one entry past the table (3 vectors)
    h.device.mmioWrite(2, 2, 4, 1); // unaligned
    h.device.mmioWrite(2, 0, 2, 1); // 16-bit
    h.device.mmioWrite(2, 0x800, 4, 0xffff_ffff); // PBA is read-only
    h.device.mmioWrite(2, 0x1_0000, 4, 1); // past the BAR
    expect(h.device.mmioRead(2, 0x800, 4)).toBe(0);
    expect(core.errorCount).toBe(errors + 5);
  });

  it('common_cfg: wrong widths, unaligned offsets and writes to read-only fields are recorded, not applied', () => {
    const { common, core } = pci();
    const errors = core.errorCount;
    common(0x12, 4, 7); // num_queues as 32-bit
    common(0x12, 2, 7); // read-only
    common(0x15, 1, 7); // config_generation is read-only
    common(0x13, 1, 7); // the middle of a field
    common(0x20, 8, 0x123456789); // queue_desc as one 8-byte access is fine
    expect(common(0x20, 8)).toBe(0x123456789);
    expect(common(0x24, 4)).toBe(1);
    common(0x04, 8, 0); // not a 64-bit field
    expect(common(0x12, 2)).toBe(2);
    expect(core.errorCount).toBe(errors + 5);
  });

  it('fuzz: random config and BAR accesses never throw, and a correct driver can still use the device', () => {
    const access = fc.record({
      space: fc.constantFrom('config', 'bar0', 'bar2', 'bar1', 'bar7'),
      write: fc.boolean(),
      offset: fc.oneof(fc.integer({ min: -8, max: 0x4010 }), fc.constantFrom(0x04, 0x14, 0x16, 0x18, 0x1c, 0x20, 0x24, 0x98, 0x9a, 0x3000, 0x3004, 0x1000, 0x2000)),
      size: fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 16),
      value: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(-1, 2 ** 53, Number.NaN, 0xffff, 1)),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 120 }), (accesses) => {
        const { h } = pci();
        for (const a of accesses) {
          expect(() => {
            if (a.space === 'config') {
              if (a.write) h.device.configWrite(a.offset, a.size, a.value);
              else h.device.configRead(a.offset, a.size);
            } else {
              const bar = Number(a.space.slice(3));
              if (a.write) h.device.mmioWrite(bar, a.offset, a.size, a.value);
              else h.device.mmioRead(bar, a.offset, a.size);
            }
          }).not.toThrow();
        }
        // Re-probe through the accessors as a fresh driver would, then run a real session.
        const fresh = createPciHarnessOver(h);
        wellBehaved(fresh, h.memory, () => undefined);
      }),
      { numRuns: 40 },
    );
  });
});

/** A new driver-side probe of the same device: the random guest may have moved BARs or turned decoding off. */
function createPciHarnessOver(h: ReturnType<typeof createPciHarness>): VirtioTransport {
  return VirtioPciTransport.probe({
    config: h.bus.configAccessor(0),
    mmio: h.bus,
    addressSpace: new BumpAddressSpaceAllocator(0xe000_0000, 0x1000_0000),
    memory: h.memory,
    allocator: h.allocator,
    msi: h.msi,
  });
}

describe('hostile driver: virtio-mmio device side', () => {
  it('registers take only aligned 32-bit accesses; the rest is recorded and ignored', () => {
    const echo = new EchoDevice();
    const h = createMmioHarness(echo);
    const core = h.device.core;
    const errors = core.errorCount;
    expect(h.device.mmioRead(0x000, 2)).toBe(0);
    expect(h.device.mmioRead(0x002, 4)).toBe(0);
    h.device.mmioWrite(0x070, 1, A);
    expect(core.status).toBe(0);
    h.device.mmioWrite(0x000, 4, 0); // read-only register
    expect(h.device.mmioRead(0x014, 4)).toBe(0); // write-only register
    expect(core.errorCount).toBe(errors + 5);
  });

  it('4.2.2: magic, version 2, ids; no shared memory regions (length -1)', () => {
    const h = createMmioHarness(new EchoDevice());
    expect(h.device.mmioRead(0x000, 4)).toBe(0x74726976);
    expect(h.device.mmioRead(0x004, 4)).toBe(2);
    expect(h.device.mmioRead(0x008, 4)).toBe(0x3f);
    h.device.mmioWrite(0x0ac, 4, 3);
    expect(h.device.mmioRead(0x0b0, 4)).toBe(0xffff_ffff);
    expect(h.device.mmioRead(0x0b4, 4)).toBe(0xffff_ffff);
    expect(h.device.mmioRead(0x0c0, 4)).toBe(0);
  });

  it('H1: QueueNotify of 0xFFFF or a queue never made ready is dropped; QueueReady with unmapped rings sets NEEDS_RESET', () => {
    const echo = new EchoDevice();
    const h = createMmioHarness(echo);
    const d = h.device;
    d.mmioWrite(0x070, 4, A | D);
    d.mmioWrite(0x024, 4, 1);
    d.mmioWrite(0x020, 4, 1);
    d.mmioWrite(0x070, 4, A | D | F);
    d.mmioWrite(0x050, 4, 0xffff);
    d.mmioWrite(0x050, 4, 0);
    expect(d.core.lastError?.code).toBe('QUEUE_NOT_READY');
    d.mmioWrite(0x030, 4, 0);
    d.mmioWrite(0x038, 4, 16);
    d.mmioWrite(0x080, 4, 0xffff_0000);
    d.mmioWrite(0x044, 4, 1);
    expect(d.mmioRead(0x070, 4) & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_NEEDS_RESET);
    expect(d.mmioRead(0x044, 4)).toBe(0);
  });

  it('4.2.2.1: reset clears InterruptStatus and QueueReady', () => {
    const echo = new EchoDevice();
    const h = createMmioHarness(echo);
    wellBehaved(h.transport, h.memory, () => {
      while (h.line.asserted) h.transport.handleInterrupt();
    });
    echo.bumpConfig();
    expect(h.device.mmioRead(0x060, 4)).toBe(2);
    h.device.mmioWrite(0x070, 4, 0);
    expect(h.device.mmioRead(0x060, 4)).toBe(0);
    expect(h.line.asserted).toBe(false);
    h.device.mmioWrite(0x030, 4, 0);
    expect(h.device.mmioRead(0x044, 4)).toBe(0);
  });

  it('fuzz: random register and config accesses never throw, and a correct driver can still use the device', () => {
    const access = fc.record({
      write: fc.boolean(),
      offset: fc.oneof(fc.integer({ min: -8, max: 0x210 }), fc.constantFrom(0x030, 0x038, 0x044, 0x050, 0x064, 0x070, 0x080, 0x0c0, 0x0fc)),
      size: fc.constantFrom(0, 1, 2, 3, 4, 8),
      value: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(-1, 0, 1, 0xf, 2 ** 53)),
    });
    fc.assert(
      fc.property(fc.array(access, { maxLength: 120 }), (accesses) => {
        const h = createMmioHarness(new EchoDevice());
        for (const a of accesses) {
          expect(() => (a.write ? h.device.mmioWrite(a.offset, a.size, a.value) : h.device.mmioRead(a.offset, a.size))).not.toThrow();
        }
        wellBehaved(h.transport, h.memory, () => {
          while (h.line.asserted) h.transport.handleInterrupt();
        });
      }),
      { numRuns: 40 },
    );
  });
});
