import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../errors.js';
import { MemoryDisk } from '../testing/memory-disk.js';
import { SCSI_CONFIG } from './constants.js';
import { ScsiDevice } from './scsi-device.js';

function device() {
  return new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: new MemoryDisk({ size: 1 << 20 }) } }, { target: 1, lun: 7, unit: { driver: new MemoryDisk({ size: 1 << 19 }) } }] });
}

describe('scsi device state', () => {
  it('round trip: sense_size, cdb_size, write cache and stopped state survive save/restore as JSON', () => {
    const a = device();
    a.writeConfig(SCSI_CONFIG.cdbSize, Uint8Array.of(16, 0, 0, 0));
    a.unit(1, 7)!.restoreState({ writeCache: false, stopped: true });
    const b = device();
    b.restoreState(JSON.parse(JSON.stringify(a.saveState())));
    expect(b.config().cdbSize).toBe(16);
    expect(b.unit(1, 7)!.writeCache).toBe(false);
    expect(b.unit(1, 7)!.isStopped).toBe(true);
    expect(b.unit(0, 0)!.writeCache).toBe(true);
  });

  it('H16: a snapshot for other LUNs or another medium size is refused with INVALID_STATE', () => {
    const state = device().saveState();
    const other = new ScsiDevice({ luns: [{ target: 0, lun: 0, unit: { driver: new MemoryDisk({ size: 1 << 20 }) } }] });
    expect(() => other.restoreState(state)).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }) as Error);
    const bigger = JSON.parse(JSON.stringify(state)) as { units: { blocks: number }[] };
    bigger.units[0]!.blocks++;
    expect(() => device().restoreState(bigger)).toThrow(/blocks/);
  });

  it('H16 property: restore of arbitrary JSON either succeeds or throws BackendError INVALID_STATE', () => {
    const valid = device().saveState();
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.record({ version: fc.constant(1), senseSize: fc.integer(), cdbSize: fc.integer(), eventsMissed: fc.jsonValue(), units: fc.constant(valid.units) })), (state) => {
        const d = device();
        try {
          d.restoreState(state);
        } catch (error) {
          expect(BackendError.isInstance(error) && error.code === 'INVALID_STATE').toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
