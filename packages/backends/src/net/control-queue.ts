// The controlq of the virtio-net device (VIRTIO 1.3 §5.1.6.5): `struct virtio_net_ctrl` — class,
// command, command-specific data (device-readable), then an ack byte (device-writable). Every
// command's data is checked against its exact size before it is read: the guest is hostile.
import {
  VIRTIO_NET_CTRL_ANNOUNCE,
  VIRTIO_NET_CTRL_ANNOUNCE_ACK,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_ALLUNI,
  VIRTIO_NET_CTRL_RX_NOBCAST,
  VIRTIO_NET_CTRL_RX_NOMULTI,
  VIRTIO_NET_CTRL_RX_NOUNI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_OK,
  hasFeature,
  type Features,
  MAC_BYTES,
  isGroupAddress,
} from '@virtio-ts/device';
import type { GuestMemory } from '@virtio-ts/memory';
import type { DescriptorChain } from '@virtio-ts/ring';
import type { QueueRunner } from '../queue-runner.js';
import type { NetFault } from './errors.js';
import { readFrom } from '../chain-io.js';
import type { NetMetrics } from './metrics.js';
import { MAC_TABLE_ENTRIES, type RxFilter, type RxModes } from './rx-filter.js';

/** What the control queue may change in its device. */
export interface ControlTarget {
  readonly memory: GuestMemory;
  readonly metrics: NetMetrics;
  readonly features: Features;
  readonly filter: RxFilter;
  /** §5.1.6.5.2 MAC_ADDR_SET: the new default MAC (config `mac` is updated before the ack). */
  setMac(mac: Uint8Array): void;
  /** §5.1.6.5.5 VQ_PAIRS_SET: false when `pairs` is out of 1..max_virtqueue_pairs. */
  setQueuePairs(pairs: number): boolean;
  /** §5.1.6.5.6 GUEST_OFFLOADS_SET: false when a bit was not negotiated. */
  setGuestOffloads(bits: bigint): boolean;
  /** §5.1.6.5.4 ANNOUNCE_ACK: clear VIRTIO_NET_S_ANNOUNCE. */
  announceAck(): void;
}

type Ack = typeof VIRTIO_NET_OK | typeof VIRTIO_NET_ERR | NetFault;

const RX_MODES: Record<number, { mode: keyof RxModes; feature: number }> = {
  [VIRTIO_NET_CTRL_RX_PROMISC]: { mode: 'promisc', feature: VIRTIO_NET_F_CTRL_RX },
  [VIRTIO_NET_CTRL_RX_ALLMULTI]: { mode: 'allmulti', feature: VIRTIO_NET_F_CTRL_RX },
  [VIRTIO_NET_CTRL_RX_ALLUNI]: { mode: 'alluni', feature: VIRTIO_NET_F_CTRL_RX_EXTRA },
  [VIRTIO_NET_CTRL_RX_NOMULTI]: { mode: 'nomulti', feature: VIRTIO_NET_F_CTRL_RX_EXTRA },
  [VIRTIO_NET_CTRL_RX_NOUNI]: { mode: 'nouni', feature: VIRTIO_NET_F_CTRL_RX_EXTRA },
  [VIRTIO_NET_CTRL_RX_NOBCAST]: { mode: 'nobcast', feature: VIRTIO_NET_F_CTRL_RX_EXTRA },
};

/**
 * The controlq. Not exported from the package: {@link NetDevice} drives it. Commands are
 * executed in order, each before its buffer is used, as §5.1.6.5 requires ("MUST update the MAC
 * filtering table before it consumes the VIRTIO_NET_CTRL_MAC_TABLE_SET command", ...).
 */
export class ControlQueue {
  private readonly small = new Uint8Array(8);
  private readonly ackByte = new Uint8Array(1);

  constructor(
    private readonly runner: QueueRunner,
    private readonly target: ControlTarget,
  ) {}

  notify(): void {
    this.target.metrics.queues[this.runner.index]!.notifications++;
    this.resume();
  }

  /** Executes every available command (also the runner's resume after a yield, H17). */
  resume(): void {
    let completed = 0;
    this.runner.drain((chain) => {
      this.handle(chain);
      completed++;
    });
    if (completed > 0) this.runner.signalIfNeeded();
  }

  stop(): void {
    this.runner.detach();
  }

  private handle(chain: DescriptorChain): void {
    const { metrics } = this.target;
    metrics.ctrlCommands++;
    let result: Ack;
    try {
      result = chain.writableLength < 1 || chain.readableLength < 2 ? 'CTRL_BAD_CHAIN' : this.execute(chain);
    } catch (error) {
      // Only a memory failure on validated segments gets here: a host bug, not a guest fault.
      this.runner.fail(`net ctrl queue: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    let ack: number = result === VIRTIO_NET_OK ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
    if (typeof result === 'string') {
      metrics.fault(result);
      ack = VIRTIO_NET_ERR;
    }
    if (ack !== VIRTIO_NET_OK) metrics.ctrlErrors++;
    if (chain.writableLength < 1) {
      this.runner.pushUsed(chain.head, 0);
      return;
    }
    this.ackByte[0] = ack;
    try {
      this.target.memory.write(chain.writable[0]!.address, this.ackByte);
    } catch (error) {
      this.runner.fail(`net ctrl queue: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.runner.pushUsed(chain.head, 1);
  }

  private execute(chain: DescriptorChain): Ack {
    const { memory, features, filter } = this.target;
    const head = this.small.subarray(0, 2);
    readFrom(memory, chain.readable, 0, head);
    const cls = head[0]!;
    const command = head[1]!;
    const dataLength = chain.readableLength - 2;
    const data = (length: number): Uint8Array | null => {
      if (dataLength !== length) return null;
      const bytes = this.small.subarray(0, length);
      readFrom(memory, chain.readable, 2, bytes);
      return bytes;
    };
    switch (cls) {
      case VIRTIO_NET_CTRL_RX: {
        const entry = RX_MODES[command];
        if (entry === undefined || !hasFeature(features, entry.feature)) return 'CTRL_UNSUPPORTED';
        // "The command-specific-data is one byte containing 0 (off) or 1 (on)."
        const on = data(1);
        if (on === null || on[0]! > 1) return 'CTRL_BAD_DATA';
        filter.modes[entry.mode] = on[0] === 1;
        return VIRTIO_NET_OK;
      }
      case VIRTIO_NET_CTRL_MAC:
        if (command === VIRTIO_NET_CTRL_MAC_TABLE_SET) {
          if (!hasFeature(features, VIRTIO_NET_F_CTRL_RX)) return 'CTRL_UNSUPPORTED';
          return this.macTableSet(chain, dataLength);
        }
        if (command === VIRTIO_NET_CTRL_MAC_ADDR_SET) {
          if (!hasFeature(features, VIRTIO_NET_F_CTRL_MAC_ADDR)) return 'CTRL_UNSUPPORTED';
          const mac = data(MAC_BYTES);
          // A station address is never a group address.
          if (mac === null || isGroupAddress(mac)) return 'CTRL_BAD_DATA';
          this.target.setMac(mac);
          return VIRTIO_NET_OK;
        }
        return 'CTRL_UNSUPPORTED';
      case VIRTIO_NET_CTRL_MQ: {
        if (command !== VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || !hasFeature(features, VIRTIO_NET_F_MQ)) return 'CTRL_UNSUPPORTED';
        const bytes = data(2);
        if (bytes === null) return 'CTRL_BAD_DATA';
        return this.target.setQueuePairs(bytes[0]! | (bytes[1]! << 8)) ? VIRTIO_NET_OK : 'CTRL_BAD_DATA';
      }
      case VIRTIO_NET_CTRL_GUEST_OFFLOADS: {
        if (command !== VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || !hasFeature(features, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)) return 'CTRL_UNSUPPORTED';
        const bytes = data(8);
        if (bytes === null) return 'CTRL_BAD_DATA';
        const bits = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
        return this.target.setGuestOffloads(bits) ? VIRTIO_NET_OK : 'CTRL_BAD_DATA';
      }
      case VIRTIO_NET_CTRL_ANNOUNCE:
        if (command !== VIRTIO_NET_CTRL_ANNOUNCE_ACK || !hasFeature(features, VIRTIO_NET_F_GUEST_ANNOUNCE)) return 'CTRL_UNSUPPORTED';
        if (dataLength !== 0) return 'CTRL_BAD_DATA';
        this.target.announceAck();
        return VIRTIO_NET_OK;
      default:
        // Classes whose features this device never offers (VLAN, RSS/hash, notification
        // coalescing, statistics): §5.1.6.5 has the device answer VIRTIO_NET_ERR, as for any unknown command.
        return 'CTRL_UNSUPPORTED';
    }
  }

  /**
   * §5.1.6.5.2: "a le32 number, followed by that number of non-multicast MAC addresses,
   * followed by another le32 number, followed by that number of multicast addresses". Both
   * counts are checked against the bytes the driver actually gave before anything is read, and
   * the table is replaced only when the whole command is well-formed.
   */
  private macTableSet(chain: DescriptorChain, dataLength: number): Ack {
    const memory = this.target.memory;
    const word = this.small.subarray(0, 4);
    const u32 = () => (word[0]! | (word[1]! << 8) | (word[2]! << 16)) + word[3]! * 0x100_0000;
    if (dataLength < 8) return 'CTRL_BAD_DATA';
    readFrom(memory, chain.readable, 2, word);
    const unicastCount = u32();
    // 6 * count fits a double exactly (count < 2^32): no overflow in the bound.
    if (unicastCount * MAC_BYTES > dataLength - 8) return 'CTRL_BAD_DATA';
    const multicastAt = 4 + unicastCount * MAC_BYTES;
    readFrom(memory, chain.readable, 2 + multicastAt, word);
    const multicastCount = u32();
    if (multicastAt + 4 + multicastCount * MAC_BYTES !== dataLength) return 'CTRL_BAD_DATA';
    // Only up to MAC_TABLE_ENTRIES addresses are ever read: more means "overflow, accept all".
    const unicast = new Uint8Array(unicastCount <= MAC_TABLE_ENTRIES ? unicastCount * MAC_BYTES : 0);
    const multicast = new Uint8Array(multicastCount <= MAC_TABLE_ENTRIES ? multicastCount * MAC_BYTES : 0);
    readFrom(memory, chain.readable, 2 + 4, unicast);
    readFrom(memory, chain.readable, 2 + multicastAt + 4, multicast);
    this.target.filter.setTables(unicast, unicastCount, multicast, multicastCount);
    return VIRTIO_NET_OK;
  }
}
