import { MODE_PAGE_ALL, MODE_PAGE_CACHING, MODE_PAGE_CONTROL } from './constants.js';
import { SENSE, type SenseCode } from './sense.js';

/**
 * MODE SENSE / MODE SELECT parameter data (SPC-4 §7.5): the mode parameter header, an optional
 * block descriptor and the caching (SBC-3 §6.4.5) and control (SPC-4 §7.5.8) pages.
 */

/** What the mode pages describe. */
export interface ModeState {
  readonly blocks: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  /** Write cache enabled (caching page WCE). */
  readonly writeCache: boolean;
}

/** Page control: 0 current, 1 changeable, 2 default, 3 saved. */
export type PageControl = 0 | 1 | 2 | 3;

function cachingPage(state: ModeState, pc: PageControl, defaultWriteCache: boolean): Uint8Array {
  const p = new Uint8Array(20);
  p[0] = MODE_PAGE_CACHING;
  p[1] = 0x12;
  const wce = pc === 1 ? true : pc === 2 ? defaultWriteCache : state.writeCache;
  p[2] = wce ? 0x04 : 0x00;
  return p;
}

function controlPage(pc: PageControl): Uint8Array {
  const p = new Uint8Array(12);
  p[0] = MODE_PAGE_CONTROL;
  p[1] = 0x0a;
  if (pc === 1) return p; // nothing changeable
  p[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
  p[5] = 0x40; // TAS: aborted tasks end with TASK ABORTED
  return p;
}

/** The pages a page code selects, or undefined for an unsupported page/subpage. */
function pagesFor(pageCode: number, subpageCode: number, state: ModeState, pc: PageControl, defaultWriteCache: boolean): Uint8Array[] | undefined {
  // Subpage 0xFF asks for all subpages; these pages have none beyond subpage 0.
  if (subpageCode !== 0 && subpageCode !== 0xff) return undefined;
  switch (pageCode) {
    case MODE_PAGE_CACHING:
      return [cachingPage(state, pc, defaultWriteCache)];
    case MODE_PAGE_CONTROL:
      return [controlPage(pc)];
    case MODE_PAGE_ALL:
      return [cachingPage(state, pc, defaultWriteCache), controlPage(pc)];
    default:
      return undefined;
  }
}

/** Full MODE SENSE(6/10) parameter data (the caller truncates to the allocation length), or the sense to report. */
export function modeSense(
  request: { size: 6 | 10; dbd: boolean; llbaa: boolean; pc: number; pageCode: number; subpageCode: number },
  state: ModeState,
  defaultWriteCache: boolean,
): Uint8Array | SenseCode {
  const pc = request.pc as PageControl;
  if (pc === 3) return SENSE.SAVING_PARAMETERS_NOT_SUPPORTED;
  const pages = pagesFor(request.pageCode, request.subpageCode, state, pc, defaultWriteCache);
  if (pages === undefined) return SENSE.INVALID_FIELD_IN_CDB;
  const long = request.size === 10 && request.llbaa;
  const descriptorLength = request.dbd ? 0 : long ? 16 : 8;
  const headerLength = request.size === 6 ? 4 : 8;
  const pagesLength = pages.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(headerLength + descriptorLength + pagesLength);
  const v = new DataView(out.buffer);
  // Device-specific parameter (SBC-3 §6.4.1): WP, DPOFUA.
  const deviceSpecific = (state.readOnly ? 0x80 : 0) | 0x10;
  if (request.size === 6) {
    out[0] = out.length - 1;
    out[2] = deviceSpecific;
    out[3] = descriptorLength;
  } else {
    v.setUint16(0, out.length - 2);
    out[3] = deviceSpecific;
    out[4] = long ? 1 : 0;
    v.setUint16(6, descriptorLength);
  }
  if (descriptorLength === 8) {
    const blocks = Math.min(state.blocks, 0xff_ffff);
    out[headerLength + 1] = blocks >> 16;
    out[headerLength + 2] = (blocks >> 8) & 0xff;
    out[headerLength + 3] = blocks & 0xff;
    v.setUint32(headerLength + 4, state.blockSize);
  } else if (descriptorLength === 16) {
    v.setBigUint64(headerLength, BigInt(state.blocks));
    v.setUint32(headerLength + 12, state.blockSize);
  }
  let at = headerLength + descriptorLength;
  for (const p of pages) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Applies MODE SELECT(6/10) parameter data (SPC-4 §6.11): returns the new write-cache setting,
 * or the sense to report. Only the caching page's WCE bit is changeable; any other difference
 * from the current values is INVALID FIELD IN PARAMETER LIST.
 */
export function modeSelect(size: 6 | 10, data: Uint8Array, state: ModeState): { writeCache: boolean } | SenseCode {
  const headerLength = size === 6 ? 4 : 8;
  if (data.length === 0) return { writeCache: state.writeCache };
  if (data.length < headerLength) return SENSE.PARAMETER_LIST_LENGTH_ERROR;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const descriptorLength = size === 6 ? data[3]! : v.getUint16(6);
  const long = size === 10 && (data[4]! & 1) !== 0;
  if (descriptorLength !== 0 && descriptorLength !== (long ? 16 : 8)) return SENSE.INVALID_FIELD_IN_PARAMETER_LIST;
  if (headerLength + descriptorLength > data.length) return SENSE.PARAMETER_LIST_LENGTH_ERROR;
  if (descriptorLength > 0) {
    // The block length cannot change.
    const blockSize = long ? v.getUint32(headerLength + 12) : v.getUint32(headerLength + 4) & 0xff_ffff;
    if (blockSize !== 0 && blockSize !== state.blockSize) return SENSE.INVALID_FIELD_IN_PARAMETER_LIST;
  }
  let writeCache = state.writeCache;
  let at = headerLength + descriptorLength;
  while (at < data.length) {
    if (at + 2 > data.length) return SENSE.PARAMETER_LIST_LENGTH_ERROR;
    const page = data[at]! & 0x3f;
    if ((data[at]! & 0x40) !== 0) return SENSE.INVALID_FIELD_IN_PARAMETER_LIST; // SPF: no subpages
    const length = data[at + 1]!;
    if (at + 2 + length > data.length) return SENSE.PARAMETER_LIST_LENGTH_ERROR;
    const body = data.subarray(at, at + 2 + length);
    if (page === MODE_PAGE_CACHING) {
      const current = cachingPage({ ...state, writeCache }, 0, state.writeCache);
      if (body.length !== current.length) return SENSE.INVALID_FIELD_IN_PARAMETER_LIST;
      for (let i = 2; i < body.length; i++) {
        const changeable = i === 2 ? 0x04 : 0;
        if ((body[i]! & ~changeable) !== (current[i]! & ~changeable)) return SENSE.INVALID_FIELD_IN_PARAMETER_LIST;
      }
      writeCache = (body[2]! & 0x04) !== 0;
    } else if (page === MODE_PAGE_CONTROL) {
      const current = controlPage(0);
      if (body.length !== current.length || body.some((b, i) => i >= 2 && b !== current[i])) return SENSE.INVALID_FIELD_IN_PARAMETER_LIST;
    } else {
      return SENSE.INVALID_FIELD_IN_PARAMETER_LIST;
    }
    at += 2 + length;
  }
  return { writeCache };
}
