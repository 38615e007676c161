const MARKER = Symbol.for('virtio-ts.error');

/**
 * Stable codes of {@link PciError}: thrown to the caller (a VMM building a device, a driver probing
 * one). Guest faults on the device side are never thrown: they are recorded as DeviceErrors
 * (`@virtio-ts/device`) on the device's core, see `VirtioPciDevice.core`.
 */
export type PciErrorCode =
  /** The function is not a modern virtio-pci device (vendor, device id, or MMIO magic/version). */
  | 'NOT_VIRTIO'
  /** A required virtio capability is missing or malformed (bad BAR, length, alignment, a loop). */
  | 'INVALID_CAPABILITY'
  /** A BAR the capabilities name is absent, or sizes to an impossible value. */
  | 'INVALID_BAR'
  /** The address-space allocator could not place a BAR. */
  | 'OUT_OF_ADDRESS_SPACE'
  /** A caller bug: bad arguments or a call in the wrong state. */
  | 'INVALID_ARGUMENT';

export interface PciErrorContext {
  readonly offset?: number;
  readonly bar?: number;
  readonly capability?: number;
  readonly address?: number;
  readonly size?: number;
}

/** The one error class of `@virtio-ts/pci`. */
export class PciError extends Error {
  readonly code: PciErrorCode;
  readonly context: PciErrorContext;
  readonly [MARKER] = true;

  constructor(code: PciErrorCode, message: string, context: PciErrorContext = {}, options?: ErrorOptions) {
    super(`${message} [${code}]${formatContext(context)}`, options);
    this.name = 'PciError';
    this.code = code;
    this.context = context;
  }

  /** True for a PciError from any copy of this package. */
  static isInstance(value: unknown): value is PciError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      (value as { name?: unknown }).name === 'PciError'
    );
  }
}

function formatContext(context: PciErrorContext): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(context)) {
    if (value === undefined) continue;
    parts.push(key === 'address' || key === 'offset' ? `${key}=0x${(value as number).toString(16)}` : `${key}=${String(value)}`);
  }
  return parts.length > 0 ? ` (${parts.join(' ')})` : '';
}
