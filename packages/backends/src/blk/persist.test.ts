import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import { MemoryDisk } from '../testing/memory-disk.js';
import { BlkDevice } from './blk-device.js';
import { BLK_CONFIG } from './constants.js';
import { harness } from '../testing/harness.js';

describe('virtio-blk persist', () => {
  it('save → JSON → restore keeps writeback and the config generation', () => {
    const driver = new MemoryDisk({ size: 1 << 20 });
    const a = new BlkDevice({ driver });
    harness(a).activate(a.deviceFeatures);
    a.writeConfig(BLK_CONFIG.writeback, Uint8Array.of(0));
    driver.setLength(1 << 19);
    a.refreshCapacity();
    const json = JSON.parse(JSON.stringify(a.saveState())) as unknown;
    const b = new BlkDevice({ driver });
    b.restoreState(json);
    expect(b.writeback).toBe(false);
    expect(b.configGeneration).toBe(1);
  });

  it('H16: restore refuses a snapshot of another disk size, an unknown version, or bad field types', () => {
    const device = new BlkDevice({ driver: new MemoryDisk({ size: 1 << 20 }) });
    const good = device.saveState();
    for (const bad of [null, 7, [], { ...good, version: 2 }, { ...good, capacity: 1 }, { ...good, writeback: 'yes' }, { ...good, configGeneration: -1 }]) {
      expect(() => device.restoreState(bad)).toThrow(BackendError);
    }
    // Optional fields default, so a minimal old snapshot loads.
    expect(() => device.restoreState({ version: 1 })).not.toThrow();
  });

  it('H16 property: restore of arbitrary JSON either succeeds or throws BackendError INVALID_STATE', () => {
    const device = new BlkDevice({ driver: new MemoryDisk({ size: 1 << 20 }) });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.record({ version: fc.constant(1), writeback: fc.jsonValue(), capacity: fc.jsonValue(), configGeneration: fc.jsonValue() }, { requiredKeys: ['version'] })), (state) => {
        try {
          device.restoreState(state);
        } catch (error) {
          expect(BackendError.isInstance(error) && error.code === 'INVALID_STATE').toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
