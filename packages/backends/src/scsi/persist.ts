import { BackendError } from '../errors.js';
import { VIRTIO_SCSI_MAX_CDB_SIZE, VIRTIO_SCSI_MAX_SENSE_SIZE } from './constants.js';

/** Saved state of one logical unit. */
export interface ScsiUnitState {
  readonly target: number;
  readonly lun: number;
  /** Caching page WCE. */
  readonly writeCache: boolean;
  /** Stopped by START STOP UNIT. */
  readonly stopped: boolean;
  /** Logical blocks when saved; restore refuses a medium of another size. */
  readonly blocks: number;
}

/**
 * The serialisable state of a {@link ScsiDevice} beyond its queues. Plain JSON; save after
 * `drain()` (commands in flight are not part of it). Pending unit attentions are not saved.
 *
 * Version history: 1 — first version.
 */
export interface ScsiDeviceState {
  readonly version: 1;
  readonly senseSize: number;
  readonly cdbSize: number;
  /** An event was dropped and EVENTS_MISSED is still owed to the driver. */
  readonly eventsMissed: boolean;
  readonly units: readonly ScsiUnitState[];
  /** The metrics JSON when saved (informational; not restored). */
  readonly metrics?: Record<string, unknown>;
}

/** Validates an untrusted snapshot (H16). Throws BackendError INVALID_STATE. */
export function restoreScsiState(state: unknown, units: readonly { target: number; lun: number; blocks: number }[]): ScsiDeviceState {
  const fail = (field: string, message: string): never => {
    throw new BackendError('INVALID_STATE', `scsi state: ${field} ${message}`, { device: 'scsi', field });
  };
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return fail('state', 'is not an object');
  const s = state as Record<string, unknown>;
  if (s.version !== 1) return fail('version', `is ${JSON.stringify(s.version)}, expected 1`);
  const int = (value: unknown, field: string, min: number, max: number): number =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max ? value : fail(field, `is not an integer in ${min}..${max}`);
  const bool = (value: unknown, field: string): boolean => (typeof value === 'boolean' ? value : fail(field, 'is not a boolean'));
  const senseSize = int(s.senseSize, 'senseSize', 0, VIRTIO_SCSI_MAX_SENSE_SIZE);
  const cdbSize = int(s.cdbSize, 'cdbSize', 1, VIRTIO_SCSI_MAX_CDB_SIZE);
  const eventsMissed = bool(s.eventsMissed ?? false, 'eventsMissed');
  if (!Array.isArray(s.units)) return fail('units', 'is not an array');
  if (s.units.length !== units.length) return fail('units', `has ${s.units.length} entries but the device has ${units.length} logical units`);
  const out: ScsiUnitState[] = (s.units as unknown[]).map((raw, i) => {
    const where = `units[${i}]`;
    if (typeof raw !== 'object' || raw === null) return fail(where, 'is not an object');
    const u = raw as Record<string, unknown>;
    const target = int(u.target, `${where}.target`, 0, 255);
    const lun = int(u.lun, `${where}.lun`, 0, 0x3fff);
    const blocks = int(u.blocks, `${where}.blocks`, 0, Number.MAX_SAFE_INTEGER);
    const live = units.find((x) => x.target === target && x.lun === lun);
    if (live === undefined) return fail(where, `names target ${target} lun ${lun}, which the device does not have`);
    if (live.blocks !== blocks) return fail(`${where}.blocks`, `is ${blocks} but the medium has ${live.blocks}`);
    return { target, lun, blocks, writeCache: bool(u.writeCache, `${where}.writeCache`), stopped: bool(u.stopped, `${where}.stopped`) };
  });
  return { version: 1, senseSize, cdbSize, eventsMissed, units: out };
}
