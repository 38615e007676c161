import type { VirtioTransport } from '@virtio-ts/device';
import { IpInterface, NetDriver, type FrameLink, type UdpSocket } from '@virtio-ts/drivers';
import type { BootDevice, BootInfo } from '../engine/boot-info.js';
import { VmmError } from '../errors.js';
import type { GuestNet } from '../workloads/guest-devices.js';
import { BENCH_PORT, ECHO_PORT, serveBench, serveEcho } from '../workloads/net-services.js';

/**
 * The NIC as the stack's link, with transmit back-pressure visible: `full` after the driver
 * refused a frame, `writable()` resolves when it has room again (a sender that paces itself, as a
 * socket blocks when the qdisc is full).
 */
class PacedLink implements FrameLink {
  full = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly driver: NetDriver) {
    driver.onWritable(() => {
      this.full = false;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  get mac(): Uint8Array {
    return this.driver.mac;
  }
  get mtu(): number {
    return this.driver.mtu;
  }
  send(frame: Uint8Array): boolean {
    const sent = this.driver.send(frame);
    if (!sent) this.full = true;
    return sent;
  }
  onFrame(listener: (frame: Uint8Array) => void): () => void {
    return this.driver.onFrame(listener);
  }
  onWritable(listener: () => void): () => void {
    return this.driver.onWritable(listener);
  }
  writable(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Brings up a net device like a Linux guest with `ip=` on its command line: the NetDriver
 * (VIRTIO 1.3 §5.1.5), an IPv4 interface with the address the boot info gives, and the guest's
 * services — ICMP echo and ARP (the stack answers them), UDP echo on port 7 (RFC 862) and the
 * net-bench counter on port 5001. They answer for as long as the vCPU runs.
 */
export async function attachNet(transport: VirtioTransport, boot: BootInfo, device: BootDevice): Promise<GuestNet> {
  if (device.net === undefined) throw new VmmError('INTERNAL', `net device ${device.index} has no interface settings`);
  const driver = await NetDriver.open(transport, { queueSize: boot.queueSize, queuePairs: device.net.queuePairs });
  const link = new PacedLink(driver);
  const stack = new IpInterface({ link, address: device.net.address, prefixLength: device.net.prefixLength });
  const sockets: UdpSocket[] = [stack.bindUdp(ECHO_PORT), stack.bindUdp(BENCH_PORT)];
  serveEcho(sockets[0]!);
  serveBench(sockets[1]!);
  return {
    stack,
    driver,
    writable: () => link.writable(),
    get full() {
      return link.full;
    },
  };
}
