// Receive filtering of the virtio-net device (VIRTIO 1.3 §5.1.6.5.1 "Packet Receive Filtering",
// §5.1.6.5.2 "Setting MAC Address Filtering"): which frames reach the guest, by destination MAC.
import { MAC_BYTES, formatMac, isBroadcast, isGroupAddress, parseMac, sameMac } from '@virtio-ts/device';

/**
 * MAC filter table entries kept per kind. §5.1.6.5.2's footnote lets a device "silently switch to
 * allmulti or promiscuous mode if it is given too many addresses": past this many, the kind
 * overflows and every address of that kind is accepted (QEMU keeps 64 as well).
 */
export const MAC_TABLE_ENTRIES = 64;

/** The receive modes of §5.1.6.5.1, as the VIRTIO_NET_CTRL_RX commands set them. */
export interface RxModes {
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
}

/** A plain copy of the filter (saved state, tests). MACs as `aa:bb:cc:dd:ee:ff`. */
export interface RxFilterState extends RxModes {
  readonly unicast: readonly string[];
  readonly multicast: readonly string[];
  readonly unicastOverflow: boolean;
  readonly multicastOverflow: boolean;
}

/**
 * Decides whether a received frame is for the guest. After reset (§5.1.6.5.2: "MUST have an empty
 * MAC filtering table on reset") it accepts the device's own MAC, broadcast and every multicast
 * address: all-multicast starts on, so that a driver without VIRTIO_NET_F_CTRL_RX (which cannot
 * program a multicast list) still gets IPv6 neighbour discovery. A driver with CTRL_RX sets the
 * modes and tables it wants (Linux sends ALLMULTI 0 and its multicast list right away).
 */
export class RxFilter {
  readonly modes: RxModes = defaultModes();
  /** The device's own address (config `mac`, or the one set with MAC_ADDR_SET). */
  readonly mac = new Uint8Array(MAC_BYTES);
  private unicast = new Uint8Array(0);
  private multicast = new Uint8Array(0);
  private unicastOverflow = false;
  private multicastOverflow = false;

  /**
   * @param enabled false: every frame is accepted whatever the modes (a data-plane-only device,
   *   whose MAC and filter live in the front-end).
   */
  constructor(
    mac: Uint8Array,
    readonly enabled = true,
  ) {
    this.mac.set(mac);
  }

  /** Back to the state after reset, with `mac` as the own address. */
  reset(mac: Uint8Array): void {
    Object.assign(this.modes, defaultModes());
    this.mac.set(mac);
    this.setTables(new Uint8Array(0), 0, new Uint8Array(0), 0);
  }

  /**
   * Replaces both tables (§5.1.6.5.2 MAC_TABLE_SET): `unicast` holds `unicastCount` addresses
   * but at most {@link MAC_TABLE_ENTRIES} of them are kept; more sets the overflow flag.
   */
  setTables(unicast: Uint8Array, unicastCount: number, multicast: Uint8Array, multicastCount: number): void {
    this.unicastOverflow = unicastCount > MAC_TABLE_ENTRIES;
    this.multicastOverflow = multicastCount > MAC_TABLE_ENTRIES;
    this.unicast = this.unicastOverflow ? new Uint8Array(0) : unicast.slice(0, unicastCount * MAC_BYTES);
    this.multicast = this.multicastOverflow ? new Uint8Array(0) : multicast.slice(0, multicastCount * MAC_BYTES);
  }

  /** True when the frame (destination MAC at offset 0) is to be delivered. */
  accepts(frame: Uint8Array): boolean {
    if (!this.enabled) return true;
    const m = this.modes;
    // §5.1.6.5.1: promiscuous "SHOULD take effect even if one of the other modes ... is on".
    if (m.promisc) return true;
    if (isGroupAddress(frame)) {
      // NOBCAST "SHOULD take effect even if ALLMULTI is on"; NOMULTI "SHOULD NOT apply to broadcast".
      if (isBroadcast(frame)) return !m.nobcast;
      if (m.nomulti) return false;
      if (m.allmulti || this.multicastOverflow) return true;
      return inTable(this.multicast, frame);
    }
    if (m.nouni) return false;
    if (m.alluni || this.unicastOverflow) return true;
    if (sameMac(frame, 0, this.mac)) return true;
    return inTable(this.unicast, frame);
  }

  save(): RxFilterState {
    return {
      ...this.modes,
      unicast: macList(this.unicast),
      multicast: macList(this.multicast),
      unicastOverflow: this.unicastOverflow,
      multicastOverflow: this.multicastOverflow,
    };
  }

  restore(state: RxFilterState): void {
    const { promisc, allmulti, alluni, nomulti, nouni, nobcast } = state;
    Object.assign(this.modes, { promisc, allmulti, alluni, nomulti, nouni, nobcast });
    const pack = (list: readonly string[]) => {
      const out = new Uint8Array(list.length * MAC_BYTES);
      list.forEach((mac, i) => out.set(parseMac(mac), i * MAC_BYTES));
      return out;
    };
    this.unicast = pack(state.unicast);
    this.multicast = pack(state.multicast);
    this.unicastOverflow = state.unicastOverflow;
    this.multicastOverflow = state.multicastOverflow;
  }
}

function defaultModes(): RxModes {
  return { promisc: false, allmulti: true, alluni: false, nomulti: false, nouni: false, nobcast: false };
}

function inTable(table: Uint8Array, frame: Uint8Array): boolean {
  for (let offset = 0; offset < table.length; offset += MAC_BYTES) if (sameMac(table, offset, frame, 0)) return true;
  return false;
}

function macList(table: Uint8Array): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < table.length; offset += MAC_BYTES) out.push(formatMac(table, offset));
  return out;
}
