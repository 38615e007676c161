// An independent reading of the PCI configuration space our virtio-pci device presents, written
// from the PCI 3.0 type-0 header and VIRTIO 1.3 §4.1 — it shares no code with the driver side.
import { GuestMemory } from '@virtio-ts/memory';
import { VIRTIO_F_VERSION_1, VIRTIO_ID_BLOCK, VIRTIO_ID_NET, VIRTIO_ID_RNG, featureBit, type VirtioDevice } from '@virtio-ts/device';
import { describe, expect, it } from 'vitest';
import { EchoDevice } from './testing/index.js';
import { VirtioPciDevice } from './virtio-pci-device.js';

interface ParsedCap {
  at: number;
  id: number;
  next: number;
  bytes: number[];
}

function u8(bytes: number[], at: number): number {
  return bytes[at]!;
}
function u16(bytes: number[], at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8);
}
function u32(bytes: number[], at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/** Reads all 256 bytes one byte at a time (the widest-compatible way), as a firmware would. */
function dump(device: VirtioPciDevice): number[] {
  return Array.from({ length: 256 }, (_, i) => device.configRead(i, 1));
}

function walk(bytes: number[]): ParsedCap[] {
  const caps: ParsedCap[] = [];
  const seen = new Set<number>();
  let at = u8(bytes, 0x34);
  while (at !== 0) {
    expect(at % 4, 'capabilities are dword aligned').toBe(0);
    expect(at).toBeGreaterThanOrEqual(0x40);
    expect(seen.has(at), 'no loop in the capability list').toBe(false);
    seen.add(at);
    const id = u8(bytes, at);
    const next = u8(bytes, at + 1);
    caps.push({ at, id, next, bytes });
    at = next;
  }
  return caps;
}

/** Sizes BAR `i` the way firmware does: write all ones, read back, restore. */
function sizeBar(device: VirtioPciDevice, i: number): { size: number; is64: boolean; prefetchable: boolean; io: boolean } {
  const reg = 0x10 + i * 4;
  const original = device.configRead(reg, 4);
  device.configWrite(reg, 4, 0xffff_ffff);
  const lo = device.configRead(reg, 4);
  device.configWrite(reg, 4, original);
  if (lo === 0) return { size: 0, is64: false, prefetchable: false, io: false };
  const io = (lo & 1) === 1;
  const is64 = ((lo >>> 1) & 3) === 2;
  let hi = 0;
  if (is64) {
    const originalHi = device.configRead(reg + 4, 4);
    device.configWrite(reg + 4, 4, 0xffff_ffff);
    hi = device.configRead(reg + 4, 4);
    device.configWrite(reg + 4, 4, originalHi);
  }
  const mask = (BigInt(hi) << 32n) | BigInt(lo & ~0xf);
  const size = Number((~mask & ((1n << (is64 ? 64n : 32n)) - 1n)) + 1n);
  return { size, is64, prefetchable: (lo & 8) !== 0, io };
}

function make(device: VirtioDevice): VirtioPciDevice {
  return new VirtioPciDevice({ device, memory: GuestMemory.create([{ guestAddress: 0, size: 1 << 16 }]) });
}

function withType(type: number, configSize: number): VirtioDevice {
  return {
    deviceType: type,
    deviceFeatures: featureBit(VIRTIO_F_VERSION_1),
    queueMaxSizes: [64, 64, 64],
    configSize,
    configGeneration: 0,
    readConfig: (_o, d) => d.fill(0),
    writeConfig: () => undefined,
    activate: () => undefined,
    reset: () => undefined,
    queueNotify: () => undefined,
  };
}

describe('PCI configuration space conformance (independent parser)', () => {
  it('4.1.2: vendor 0x1AF4, device 0x1040 + id, revision >= 1, subsystem id >= 0x40, type-0 header, class code', () => {
    for (const [type, classCode] of [
      [VIRTIO_ID_NET, 0x020000],
      [VIRTIO_ID_BLOCK, 0x010000],
      [VIRTIO_ID_RNG, 0xff0000],
    ] as const) {
      const bytes = dump(make(withType(type, 8)));
      expect(u16(bytes, 0)).toBe(0x1af4);
      expect(u16(bytes, 2)).toBe(0x1040 + type);
      expect(u8(bytes, 8)).toBeGreaterThanOrEqual(1);
      expect(u16(bytes, 0x2e)).toBeGreaterThanOrEqual(0x40);
      expect(u8(bytes, 0x0e) & 0x7f).toBe(0);
      expect(u32(bytes, 8) >>> 8).toBe(classCode);
      expect(u16(bytes, 6) & 0x10, 'status: capabilities list').toBe(0x10);
      expect(u8(bytes, 0x3d), 'INTA#').toBe(1);
    }
  });

  it('4.1.4: every virtio capability is well formed, in a present memory BAR, aligned and inside the BAR', () => {
    const echo = new EchoDevice({ queueSizes: [256, 128, 64] });
    const device = make(echo);
    const bytes = dump(device);
    const caps = walk(bytes);
    const bars = Array.from({ length: 6 }, (_, i) => sizeBar(device, i));
    // BAR 0 is a 64-bit memory BAR (BAR 1 is its upper half); BAR 2 holds MSI-X.
    expect(bars[0]).toMatchObject({ is64: true, io: false });
    expect(bars[0]!.size & (bars[0]!.size - 1)).toBe(0);
    expect(bars[2]!.size).toBeGreaterThanOrEqual(0x1000);
    const byType = new Map<number, { bar: number; offset: number; length: number; at: number; capLen: number }>();
    for (const cap of caps.filter((c) => c.id === 0x09)) {
      const capLen = u8(bytes, cap.at + 2);
      const cfgType = u8(bytes, cap.at + 3);
      const bar = u8(bytes, cap.at + 4);
      const offset = u32(bytes, cap.at + 8);
      const length = u32(bytes, cap.at + 12);
      expect(capLen).toBeGreaterThanOrEqual(16);
      expect(cap.at + capLen).toBeLessThanOrEqual(256);
      expect(byType.has(cfgType), 'one capability of each type').toBe(false);
      byType.set(cfgType, { bar, offset, length, at: cap.at, capLen });
      if (cfgType === 5) continue; // PCI_CFG: bar/offset/length are the driver's window
      expect(bar).toBeLessThanOrEqual(5);
      expect(bars[bar]!.size, `cap ${cfgType} names a present BAR`).toBeGreaterThan(0);
      expect(bars[bar]!.io).toBe(false);
      expect(offset + length).toBeLessThanOrEqual(bars[bar]!.size);
    }
    const common = byType.get(1)!;
    const notify = byType.get(2)!;
    const isr = byType.get(3)!;
    const deviceCfg = byType.get(4)!;
    const pciCfg = byType.get(5)!;
    // §4.1.4.3.1: "offset MUST be 4-byte aligned"; the structure is 0x40 bytes with the admin fields.
    expect(common.offset % 4).toBe(0);
    expect(common.length).toBeGreaterThanOrEqual(0x3c);
    // §4.1.4.4.1: 2-byte aligned (4 with NOTIFICATION_DATA); multiplier an even power of 2 (multiple of 4) or 0.
    expect(notify.capLen).toBeGreaterThanOrEqual(20);
    expect(notify.offset % 4).toBe(0);
    const multiplier = u32(bytes, notify.at + 16);
    expect(multiplier === 0 || ((multiplier & (multiplier - 1)) === 0 && multiplier % 4 === 0)).toBe(true);
    // "cap.length >= queue_notify_off * notify_off_multiplier + 2" for every queue (notify_off = index here).
    expect(notify.length).toBeGreaterThanOrEqual((3 - 1) * multiplier + 4);
    // §4.1.4.5: at least one byte; §4.1.4.6.1: device cfg 4-byte aligned, as long as the config space.
    expect(isr.length).toBeGreaterThanOrEqual(1);
    expect(deviceCfg.offset % 4).toBe(0);
    expect(deviceCfg.length).toBe(echo.configSize);
    expect(pciCfg.capLen).toBeGreaterThanOrEqual(20);
    // The structures in BAR 0 must not overlap.
    const ranges = [common, notify, isr, deviceCfg].map((c) => [c.offset, c.offset + c.length] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1]);

    // MSI-X (PCI 3.0 §6.8.2): table and PBA inside their BAR, QWORD aligned, not overlapping.
    const msix = caps.find((c) => c.id === 0x11)!;
    expect(msix).toBeDefined();
    const control = u16(bytes, msix.at + 2);
    const vectors = (control & 0x7ff) + 1;
    expect(vectors).toBe(4); // 3 queues + config
    expect(control & 0xc000, 'MSI-X disabled and unmasked after reset').toBe(0);
    const table = u32(bytes, msix.at + 4);
    const pba = u32(bytes, msix.at + 8);
    const tableBar = table & 7;
    const pbaBar = pba & 7;
    const tableOffset = table & ~7;
    const pbaOffset = pba & ~7;
    expect(bars[tableBar]!.size).toBeGreaterThan(0);
    expect(tableOffset + vectors * 16).toBeLessThanOrEqual(bars[tableBar]!.size);
    expect(pbaOffset + Math.ceil(vectors / 64) * 8).toBeLessThanOrEqual(bars[pbaBar]!.size);
    if (tableBar === pbaBar) expect(pbaOffset >= tableOffset + vectors * 16 || pbaOffset + 8 <= tableOffset).toBe(true);
    expect(tableBar === common.bar && tableOffset < 0x4000).toBe(false);
  });

  it('4.1.4.6: a device without configuration space presents no DEVICE_CFG capability', () => {
    const bytes = dump(make(withType(VIRTIO_ID_RNG, 0)));
    const types = walk(bytes).filter((c) => c.id === 0x09).map((c) => u8(bytes, c.at + 3));
    expect(types).toEqual([1, 2, 3, 5]);
  });

  it('PCI 3.0: header fields are read-only; BAR sizing reads back the size mask and keeps the type bits', () => {
    const device = make(new EchoDevice());
    const before = dump(device);
    for (const offset of [0x00, 0x02, 0x08, 0x0a, 0x2c, 0x2e, 0x34, 0x3d]) device.configWrite(offset, 2, 0x5a5a);
    const after = dump(device);
    for (const offset of [0x00, 0x01, 0x02, 0x03, 0x08, 0x0a, 0x0b, 0x2c, 0x2e, 0x34, 0x3d]) expect(after[offset]).toBe(before[offset]);
    device.configWrite(0x10, 4, 0xffff_ffff);
    expect(device.configRead(0x10, 4)).toBe((~(0x4000 - 1) & ~0xf | 0x4) >>> 0);
    device.configWrite(0x10, 4, 0x1234_5678);
    device.configWrite(0x14, 4, 0x1);
    expect(device.barAddress(0)).toBe(0x1_1234_4000);
    // Absent BARs read 0 whatever is written.
    device.configWrite(0x1c, 4, 0xffff_ffff);
    expect(device.configRead(0x1c, 4)).toBe(0);
  });
});
