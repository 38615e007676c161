import { DriverError } from '../../errors.js';
import { nowMs, randomBytes, startTimer, type Timer } from '../web-timers.js';
import { BROADCAST_MAC, formatIpv4, isMulticastMac, macEquals, prefixMask, toIpv4, type MacAddress } from './addresses.js';
import { ARP_OP_REPLY, ARP_OP_REQUEST, decodeArp, encodeArp } from './arp.js';
import { ArpCache } from './arp-cache.js';
import { decodeEthernet, encodeEthernet, ETHERNET_HEADER_SIZE, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from './ethernet.js';
import type { FrameLink } from './frame-link.js';
import { decodeIcmpEcho, encodeIcmpEcho, ICMP_ECHO_HEADER_SIZE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST } from './icmp.js';
import { decodeIpv4, encodeIpv4, IP_PROTOCOL_ICMP, IP_PROTOCOL_UDP, IPV4_HEADER_SIZE, isFragment } from './ipv4.js';
import { decodeUdp, encodeUdp, UDP_HEADER_SIZE } from './udp.js';
import { UdpSocket } from './udp-socket.js';

/** Options of {@link IpInterface}. */
export interface IpInterfaceOptions {
  /** The NIC: a {@link NetDriver} or any {@link FrameLink}. */
  readonly link: FrameLink;
  /** Our IPv4 address, e.g. `'10.0.0.1'`. */
  readonly address: string | number;
  /** On-link prefix length (0..32); default 24. */
  readonly prefixLength?: number;
  /** Next hop for destinations off the prefix; without it they are UNREACHABLE. */
  readonly gateway?: string | number;
  /** TTL of sent datagrams (1..255); default 64 (RFC 1700's recommended default). */
  readonly ttl?: number;
  /** Wait for an ARP reply before retrying; default 1000 ms. */
  readonly arpTimeoutMs?: number;
  /** ARP requests sent before giving up (≥ 1); default 3. */
  readonly arpAttempts?: number;
  /** Lifetime of an ARP cache entry; default 60 s. */
  readonly arpCacheTtlMs?: number;
  /** Frames kept while the link is full (then dropped and counted); default 1024. */
  readonly transmitBacklog?: number;
  /** Clock in milliseconds (tests inject one); default `performance.now`. */
  readonly now?: () => number;
}

/** Options of {@link IpInterface.ping}. */
export interface PingOptions {
  /** Echo requests to send, one after another; default 1. */
  readonly count?: number;
  /** ICMP data bytes per request (as `ping -s`); default 56. At most the MTU minus 28. */
  readonly size?: number;
  /** How long to wait for each reply; default 1000 ms. */
  readonly timeoutMs?: number;
  /** Pause between a reply (or timeout) and the next request; default 0. */
  readonly intervalMs?: number;
}

/** What {@link IpInterface.ping} measured. */
export interface PingResult {
  readonly transmitted: number;
  readonly received: number;
  /** Round-trip time of each request in milliseconds, or null when no valid reply came in time. */
  readonly rttMs: readonly (number | null)[];
}

/** Reasons the interface dropped a frame (received, or the last two: sent), counted in {@link IpInterfaceStats.dropped}. */
export type DropReason =
  | 'malformed'
  | 'notForUs'
  | 'unknownEtherType'
  | 'fragment'
  | 'badSource'
  | 'unknownProtocol'
  | 'noSocket'
  | 'broadcastEcho'
  | 'transmitBacklogFull'
  /** The link threw on send (reset, broken queue): the frame is dropped, the caller is not failed. */
  | 'transmitError';

/** Counters of an {@link IpInterface}. */
export interface IpInterfaceStats {
  rxFrames: number;
  txFrames: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  echoRepliesSent: number;
  udpReceived: number;
  udpSent: number;
  dropped: Record<DropReason, number>;
}

/** Identifies an outstanding echo request. */
interface EchoWait {
  readonly data: Uint8Array;
  readonly resolve: (ok: boolean) => void;
}

const LIMITED_BROADCAST = 0xffffffff;
/** Ports 1..65535; port 0 is not a valid destination (RFC 768 leaves it "unused"). */
const MAX_PORT = 0xffff;

/**
 * An IPv4 host on one link: ARP (RFC 826, with a cache that expires and queues packets while it
 * resolves), IPv4 without fragmentation (RFC 791; fragments are dropped), ICMP echo (RFC 792,
 * answered automatically; {@link ping}) and UDP (RFC 768; {@link bindUdp}). The receive path never
 * throws: bad frames are dropped and counted in {@link stats}.
 *
 * @example
 * ```ts
 * const [a, b] = createMemoryLinkPair();
 * const left = new IpInterface({ link: a, address: '10.0.0.1', prefixLength: 24 });
 * const right = new IpInterface({ link: b, address: '10.0.0.2', prefixLength: 24 });
 * const { rttMs } = await left.ping('10.0.0.2', { count: 3 });
 * const socket = right.bindUdp(7);
 * socket.onMessage(({ data, address, port }) => void socket.sendTo(address, port, data)); // echo
 * ```
 */
export class IpInterface {
  readonly link: FrameLink;
  readonly mac: MacAddress;
  /** Our address as a uint32. */
  readonly address: number;
  readonly prefixLength: number;
  readonly stats: IpInterfaceStats = {
    rxFrames: 0,
    txFrames: 0,
    arpRequestsSent: 0,
    arpRepliesSent: 0,
    echoRepliesSent: 0,
    udpReceived: 0,
    udpSent: 0,
    dropped: { malformed: 0, notForUs: 0, unknownEtherType: 0, fragment: 0, badSource: 0, unknownProtocol: 0, noSocket: 0, broadcastEcho: 0, transmitBacklogFull: 0, transmitError: 0 },
  };
  readonly arp: ArpCache;
  private readonly mask: number;
  private readonly gateway: number | undefined;
  private readonly ttl: number;
  private readonly arpTimeoutMs: number;
  private readonly arpAttempts: number;
  private readonly backlogLimit: number;
  private readonly now: () => number;
  private readonly sockets = new Map<number, UdpSocket>();
  private readonly echoWaits = new Map<number, EchoWait>();
  private readonly arpTimers = new Map<number, Timer>();
  private readonly backlog: Uint8Array[] = [];
  private readonly unsubscribe: (() => void)[] = [];
  private identification: number;
  private echoIdentifier: number;
  private closed = false;

  constructor(options: IpInterfaceOptions) {
    this.link = options.link;
    this.mac = options.link.mac.slice(0, 6);
    this.address = toIpv4(options.address);
    this.prefixLength = options.prefixLength ?? 24;
    if (!Number.isInteger(this.prefixLength) || this.prefixLength < 0 || this.prefixLength > 32) {
      throw new DriverError('INVALID_ARGUMENT', `prefix length ${this.prefixLength} is outside 0..32`, { protocol: 'ipv4' });
    }
    this.mask = prefixMask(this.prefixLength);
    this.gateway = options.gateway === undefined ? undefined : toIpv4(options.gateway);
    this.ttl = options.ttl ?? 64;
    // RFC 1122 §3.2.1.7: "A host MUST NOT send a datagram with a Time-to-Live (TTL) value of zero."
    if (!Number.isInteger(this.ttl) || this.ttl < 1 || this.ttl > 255) throw new DriverError('INVALID_ARGUMENT', `TTL ${this.ttl} is outside 1..255`, { protocol: 'ipv4' });
    this.arpTimeoutMs = options.arpTimeoutMs ?? 1000;
    this.arpAttempts = Math.max(1, options.arpAttempts ?? 3);
    this.backlogLimit = options.transmitBacklog ?? 1024;
    this.now = options.now ?? nowMs;
    this.arp = new ArpCache({ now: this.now, ...(options.arpCacheTtlMs !== undefined ? { ttlMs: options.arpCacheTtlMs } : {}) });
    const seed = randomBytes(4);
    this.identification = (seed[0]! << 8) | seed[1]!;
    this.echoIdentifier = (seed[2]! << 8) | seed[3]!;
    this.unsubscribe.push(this.link.onFrame((frame) => this.receive(frame)));
    this.unsubscribe.push(this.link.onWritable(() => this.flushBacklog()));
  }

  /** Our address, dotted. */
  get addressText(): string {
    return formatIpv4(this.address);
  }

  /** Largest UDP payload one datagram carries here (no fragmentation). */
  get maxUdpPayload(): number {
    return this.link.mtu - IPV4_HEADER_SIZE - UDP_HEADER_SIZE;
  }

  /**
   * Sends `count` ICMP echo requests to `destination`, one at a time, and measures each reply's
   * round trip. A reply counts only if its identifier, sequence and data match (RFC 792: "The data
   * received in the echo message must be returned in the echo reply message").
   */
  async ping(destination: string | number, options: PingOptions = {}): Promise<PingResult> {
    const target = toIpv4(destination);
    const count = options.count ?? 1;
    const size = options.size ?? 56;
    const timeoutMs = options.timeoutMs ?? 1000;
    const maxSize = this.link.mtu - IPV4_HEADER_SIZE - ICMP_ECHO_HEADER_SIZE;
    if (!Number.isInteger(count) || count < 0) throw new DriverError('INVALID_ARGUMENT', `ping count ${count}`, { protocol: 'icmp' });
    if (!Number.isInteger(size) || size < 0 || size > maxSize) {
      throw new DriverError('INVALID_ARGUMENT', `ping size ${size} is outside 0..${maxSize} (no fragmentation)`, { protocol: 'icmp', length: size });
    }
    const identifier = this.echoIdentifier;
    this.echoIdentifier = (this.echoIdentifier + 1) & 0xffff;
    const rttMs: (number | null)[] = [];
    for (let sequence = 0; sequence < count; sequence++) {
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = (i + sequence) & 0xff;
      const key = (identifier << 16) | (sequence & 0xffff);
      const started = this.now();
      const answered = new Promise<boolean>((resolve) => this.echoWaits.set(key, { data, resolve }));
      const timer = startTimer(timeoutMs, () => this.echoWaits.get(key)?.resolve(false));
      const message = encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, code: 0, identifier, sequence: sequence & 0xffff, data });
      this.sendIpv4(target, IP_PROTOCOL_ICMP, message).catch(() => this.echoWaits.get(key)?.resolve(false));
      const ok = await answered;
      timer.cancel();
      this.echoWaits.delete(key);
      rttMs.push(ok ? this.now() - started : null);
      if (options.intervalMs !== undefined && options.intervalMs > 0 && sequence + 1 < count) {
        await new Promise<void>((resolve) => startTimer(options.intervalMs!, resolve));
      }
    }
    return { transmitted: count, received: rttMs.filter((r) => r !== null).length, rttMs };
  }

  /** Binds a UDP port (1..65535). Throws INVALID_ARGUMENT when it is taken. */
  bindUdp(port: number): UdpSocket {
    if (!Number.isInteger(port) || port < 1 || port > MAX_PORT) throw new DriverError('INVALID_ARGUMENT', `UDP port ${port} is outside 1..65535`, { protocol: 'udp', port });
    if (this.sockets.has(port)) throw new DriverError('INVALID_ARGUMENT', `UDP port ${port} is already bound`, { protocol: 'udp', port });
    const socket = new UdpSocket(this, port);
    this.sockets.set(port, socket);
    return socket;
  }

  /** @internal The socket's `close`. */
  releaseUdpPort(port: number): void {
    this.sockets.delete(port);
  }

  /** Sends one UDP datagram (what {@link UdpSocket.sendTo} calls). */
  async sendUdp(destination: string | number, sourcePort: number, destinationPort: number, data: Uint8Array): Promise<void> {
    const target = toIpv4(destination);
    if (!Number.isInteger(destinationPort) || destinationPort < 1 || destinationPort > MAX_PORT) {
      throw new DriverError('INVALID_ARGUMENT', `UDP port ${destinationPort} is outside 1..65535`, { protocol: 'udp', port: destinationPort });
    }
    if (data.length > this.maxUdpPayload) {
      throw new DriverError('INVALID_ARGUMENT', `UDP payload of ${data.length} bytes exceeds ${this.maxUdpPayload} (MTU ${this.link.mtu}, no fragmentation)`, { protocol: 'udp', length: data.length });
    }
    await this.sendIpv4(target, IP_PROTOCOL_UDP, encodeUdp({ sourcePort, destinationPort, data }, this.address, target));
    this.stats.udpSent++;
  }

  /**
   * Sends an IPv4 datagram: routes it (on-link or through the gateway), resolves the next hop
   * with ARP (queueing meanwhile), frames it and hands it to the link. Rejects UNREACHABLE when
   * there is no route or ARP gives up, INVALID_ARGUMENT when it exceeds the MTU.
   */
  sendIpv4(destination: number, protocol: number, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new DriverError('DEVICE_RESET', 'the interface is closed', { protocol: 'ipv4' }));
    if (IPV4_HEADER_SIZE + payload.length > this.link.mtu) {
      return Promise.reject(new DriverError('INVALID_ARGUMENT', `datagram exceeds MTU ${this.link.mtu} (no fragmentation)`, { protocol: 'ipv4', length: payload.length }));
    }
    const packet = encodeIpv4({ identification: this.identification, ttl: this.ttl, protocol, source: this.address, destination, payload });
    this.identification = (this.identification + 1) & 0xffff;
    if (destination === LIMITED_BROADCAST || destination === this.subnetBroadcast) {
      this.transmit(BROADCAST_MAC, ETHERTYPE_IPV4, packet);
      return Promise.resolve();
    }
    let nextHop = destination;
    if ((destination & this.mask) >>> 0 !== (this.address & this.mask) >>> 0) {
      if (this.gateway === undefined) {
        return Promise.reject(new DriverError('UNREACHABLE', `no route to ${formatIpv4(destination)}`, { protocol: 'ipv4', address: formatIpv4(destination) }));
      }
      nextHop = this.gateway;
    }
    const known = this.arp.lookup(nextHop);
    if (known !== undefined) {
      this.transmit(known, ETHERTYPE_IPV4, packet);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const starts = this.arp.enqueue(
        nextHop,
        {
          deliver: (mac) => {
            this.transmit(mac, ETHERTYPE_IPV4, packet);
            resolve();
          },
          fail: reject,
        },
        () => new DriverError('UNREACHABLE', `too many packets waiting for ARP on ${formatIpv4(nextHop)}`, { protocol: 'arp', address: formatIpv4(nextHop) }),
      );
      if (starts) this.resolve(nextHop, 1);
    });
  }

  /** Stops listening to the link; pending sends and pings fail or time out. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
    for (const timer of this.arpTimers.values()) timer.cancel();
    this.arpTimers.clear();
    this.arp.clear(new DriverError('DEVICE_RESET', 'the interface was closed', { protocol: 'arp' }));
    for (const wait of this.echoWaits.values()) wait.resolve(false);
    for (const socket of [...this.sockets.values()]) socket.close();
  }

  /**
   * Handles one received Ethernet frame. Never throws: anything malformed or not for us is
   * dropped and counted.
   */
  receive(frame: Uint8Array): void {
    if (this.closed) return;
    this.stats.rxFrames++;
    try {
      const ethernet = decodeEthernet(frame);
      // IEEE 802.3: accept our unicast address and broadcast; we join no multicast group.
      if (!macEquals(ethernet.destination, this.mac) && !macEquals(ethernet.destination, BROADCAST_MAC)) {
        this.drop('notForUs');
        return;
      }
      if (ethernet.etherType === ETHERTYPE_ARP) this.receiveArp(ethernet.payload);
      else if (ethernet.etherType === ETHERTYPE_IPV4) this.receiveIpv4(ethernet.payload, isMulticastMac(ethernet.destination));
      else this.drop('unknownEtherType');
    } catch (error) {
      // Codec failures are MALFORMED; anything else (a listener's bug) is counted the same way.
      void error;
      this.drop('malformed');
    }
  }

  private get subnetBroadcast(): number {
    return this.prefixLength >= 31 ? LIMITED_BROADCAST : ((this.address | ~this.mask) >>> 0);
  }

  private drop(reason: DropReason): void {
    this.stats.dropped[reason]++;
  }

  private receiveArp(payload: Uint8Array): void {
    const arp = decodeArp(payload);
    // RFC 826 packet reception: merge first, then add if we are the target, then reply to requests.
    const forUs = arp.targetIp === this.address;
    if (arp.senderIp === 0 || isMulticastMac(arp.senderMac)) {
      // An ARP probe (RFC 5227, sender 0.0.0.0) or a bogus sender: learn nothing.
      if (!forUs || arp.operation !== ARP_OP_REQUEST || isMulticastMac(arp.senderMac)) return;
    } else {
      this.arp.learn(arp.senderIp, arp.senderMac, forUs);
      const timer = this.arpTimers.get(arp.senderIp);
      if (timer !== undefined && !this.arp.isResolving(arp.senderIp)) {
        timer.cancel();
        this.arpTimers.delete(arp.senderIp);
      }
    }
    if (forUs && arp.operation === ARP_OP_REQUEST) {
      const reply = encodeArp({ operation: ARP_OP_REPLY, senderMac: this.mac, senderIp: this.address, targetMac: arp.senderMac, targetIp: arp.senderIp });
      this.stats.arpRepliesSent++;
      this.transmit(arp.senderMac, ETHERTYPE_ARP, reply);
    }
  }

  private receiveIpv4(bytes: Uint8Array, linkMulticast: boolean): void {
    const packet = decodeIpv4(bytes);
    const broadcast = packet.destination === LIMITED_BROADCAST || packet.destination === this.subnetBroadcast;
    if (packet.destination !== this.address && !broadcast) {
      this.drop('notForUs');
      return;
    }
    // RFC 1122 §3.2.1.3: a datagram whose source is a broadcast or multicast address MUST be discarded.
    if (packet.source === LIMITED_BROADCAST || packet.source >>> 28 === 0xe || packet.source === this.subnetBroadcast) {
      this.drop('badSource');
      return;
    }
    // No reassembly (RFC 791 §3.2 leaves it to hosts; this stack never sends fragments).
    if (isFragment(packet)) {
      this.drop('fragment');
      return;
    }
    if (packet.protocol === IP_PROTOCOL_ICMP) this.receiveIcmp(packet.payload, packet.source, broadcast || linkMulticast);
    else if (packet.protocol === IP_PROTOCOL_UDP) this.receiveUdp(packet.payload, packet.source, packet.destination);
    else this.drop('unknownProtocol');
  }

  private receiveIcmp(bytes: Uint8Array, source: number, broadcast: boolean): void {
    const message = decodeIcmpEcho(bytes);
    if (message.type === ICMP_ECHO_REQUEST && message.code === 0) {
      // RFC 1122 §3.2.2.6: "An ICMP Echo Request destined to an IP broadcast or IP multicast address MAY be silently discarded."
      if (broadcast) {
        this.drop('broadcastEcho');
        return;
      }
      // RFC 1122 §3.2.2.6: "Every host MUST implement an ICMP Echo server function" and the data "MUST be entirely included in the resulting Echo Reply".
      const reply = encodeIcmpEcho({ type: ICMP_ECHO_REPLY, code: 0, identifier: message.identifier, sequence: message.sequence, data: message.data });
      this.stats.echoRepliesSent++;
      this.sendIpv4(source, IP_PROTOCOL_ICMP, reply).catch(() => undefined);
      return;
    }
    if (message.type === ICMP_ECHO_REPLY) {
      const wait = this.echoWaits.get((message.identifier << 16) | message.sequence);
      if (wait !== undefined && bytesEqual(wait.data, message.data)) wait.resolve(true);
      return;
    }
    this.drop('unknownProtocol');
  }

  private receiveUdp(bytes: Uint8Array, source: number, destination: number): void {
    const datagram = decodeUdp(bytes, source, destination);
    const socket = this.sockets.get(datagram.destinationPort);
    if (socket === undefined) {
      // RFC 1122 §4.1.3.1 says a host SHOULD answer ICMP Port Unreachable; this stack only counts it.
      this.drop('noSocket');
      return;
    }
    this.stats.udpReceived++;
    socket.deliver(datagram.data, source, datagram.sourcePort);
  }

  /** Sends an ARP request for `ip` (attempt n of arpAttempts), re-armed until answered. */
  private resolve(ip: number, attempt: number): void {
    if (this.closed) return;
    const request = encodeArp({ operation: ARP_OP_REQUEST, senderMac: this.mac, senderIp: this.address, targetMac: new Uint8Array(6), targetIp: ip });
    this.stats.arpRequestsSent++;
    this.transmit(BROADCAST_MAC, ETHERTYPE_ARP, request);
    this.arpTimers.set(
      ip,
      startTimer(this.arpTimeoutMs, () => {
        this.arpTimers.delete(ip);
        if (!this.arp.isResolving(ip)) return;
        if (attempt < this.arpAttempts) this.resolve(ip, attempt + 1);
        else this.arp.fail(ip, new DriverError('UNREACHABLE', `ARP: no reply from ${formatIpv4(ip)} after ${attempt} requests`, { protocol: 'arp', address: formatIpv4(ip) }));
      }),
    );
  }

  private transmit(destination: MacAddress, etherType: number, payload: Uint8Array): void {
    const frame = encodeEthernet({ destination, source: this.mac, etherType, payload });
    if (this.backlog.length > 0 || !this.trySend(frame)) {
      if (this.backlog.length >= this.backlogLimit) {
        this.drop('transmitBacklogFull');
        return;
      }
      this.backlog.push(frame);
    }
  }

  /** Hands a frame to the link: true when taken or dropped for good, false when the link is full. */
  private trySend(frame: Uint8Array): boolean {
    try {
      if (!this.link.send(frame)) return false;
      this.stats.txFrames++;
    } catch {
      this.drop('transmitError');
    }
    return true;
  }

  private flushBacklog(): void {
    let sent = 0;
    while (sent < this.backlog.length && this.trySend(this.backlog[sent]!)) sent++;
    this.backlog.splice(0, sent);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytes of Ethernet + IPv4 headers in front of a transport payload. */
export const IPV4_OVERHEAD = ETHERNET_HEADER_SIZE + IPV4_HEADER_SIZE;
