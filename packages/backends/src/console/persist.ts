import { BackendError } from '../errors.js';

/**
 * Serialisable state of a {@link ConsoleDevice} beyond its queues. Version history: 1 — first.
 */
export interface ConsoleDeviceState {
  readonly version: 1;
  readonly cols: number;
  readonly rows: number;
  /** The driver sent DEVICE_READY (multiport). */
  readonly deviceReady: boolean;
  readonly ports: readonly ConsolePortState[];
}

export interface ConsolePortState {
  readonly id: number;
  readonly ready: boolean;
  readonly guestOpen: boolean;
  readonly hostOpen: boolean;
  /** Host input not yet delivered, as byte values. */
  readonly pendingInput: readonly number[];
}

/** Validates an untrusted snapshot against the device's ports (H16); throws BackendError INVALID_STATE. */
export function restoreConsoleState(state: unknown, device: { portIds: readonly number[]; maxBufferedInput: number }): ConsoleDeviceState {
  const fail = (field: string, message: string): never => {
    throw new BackendError('INVALID_STATE', `console state: ${field} ${message}`, { device: 'console', field });
  };
  if (typeof state !== 'object' || state === null || Array.isArray(state)) return fail('state', 'is not an object');
  const s = state as Record<string, unknown>;
  if (s.version !== 1) return fail('version', `is ${JSON.stringify(s.version)}, expected 1`);
  const u16 = (v: unknown, field: string) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff ? v : fail(field, 'is not a 16-bit integer'));
  const bool = (v: unknown, field: string, fallback: boolean) => (v === undefined ? fallback : typeof v === 'boolean' ? v : fail(field, 'is not a boolean'));
  const cols = u16(s.cols ?? 0, 'cols');
  const rows = u16(s.rows ?? 0, 'rows');
  const deviceReady = bool(s.deviceReady, 'deviceReady', false);
  const rawPorts = s.ports ?? [];
  if (!Array.isArray(rawPorts)) return fail('ports', 'is not an array');
  if (rawPorts.length > device.portIds.length) return fail('ports', `has ${rawPorts.length} entries but the device has ${device.portIds.length} ports`);
  const seen = new Set<number>();
  const ports = rawPorts.map((raw: unknown, i): ConsolePortState => {
    if (typeof raw !== 'object' || raw === null) return fail(`ports.${i}`, 'is not an object');
    const p = raw as Record<string, unknown>;
    const id = p.id;
    if (typeof id !== 'number' || !device.portIds.includes(id) || seen.has(id)) return fail(`ports.${i}.id`, 'is not a port of this device (or repeated)');
    seen.add(id);
    const input = p.pendingInput ?? [];
    if (!Array.isArray(input) || input.length > device.maxBufferedInput || !input.every((b) => typeof b === 'number' && Number.isInteger(b) && b >= 0 && b <= 255)) {
      return fail(`ports.${i}.pendingInput`, `is not a byte array of at most ${device.maxBufferedInput} bytes`);
    }
    return {
      id,
      ready: bool(p.ready, `ports.${i}.ready`, false),
      guestOpen: bool(p.guestOpen, `ports.${i}.guestOpen`, false),
      hostOpen: bool(p.hostOpen, `ports.${i}.hostOpen`, true),
      pendingInput: input as number[],
    };
  });
  return { version: 1, cols, rows, deviceReady, ports };
}
