import { L2Switch, type NetBackend } from '@virtio-ts/backends';
import { StreamNetBackend, TapNetBackend } from '@virtio-ts/backends/node';
import { parseNetBackend } from '../config/net.js';
import { netDevices, type VmConfig } from '../config/schema.js';
import { VmmError } from '../errors.js';

/** How long a stream client keeps trying to reach its server (a VM of the same run may still be starting). */
const STREAM_RECONNECT_MS = 100;

/**
 * The host side of networking for one `vmm run`: the in-process L2 switches, shared by every VM of
 * the process that names them (created on first use, with the largest MTU of their devices), and
 * every net device's back-end (a switch port, a TAP, a stream socket). Closing it closes them all.
 */
export class NetHost {
  readonly switches = new Map<string, L2Switch>();
  private readonly backends = new Map<string, NetBackend>();
  private readonly switchMtu = new Map<string, number>();
  /**
   * Keeps the event loop alive while back-ends are open: a TAP's readiness thread is unref'd and
   * waited on with Atomics.waitAsync, which holds nothing, so a guest waiting for a reply from the
   * TAP (and the TAP's own close) would otherwise let the process exit with the run unfinished.
   */
  private keepAlive: ReturnType<typeof setInterval> | undefined;

  /** `configs`: every VM of the run, so that each switch is made with the largest MTU of its devices. */
  constructor(configs: readonly VmConfig[]) {
    for (const config of configs) {
      for (const { config: net } of netDevices(config)) {
        const backend = parseNetBackend(net.backend);
        if (typeof backend !== 'string' && backend.kind === 'switch') this.switchMtu.set(backend.name, Math.max(this.switchMtu.get(backend.name) ?? 0, net.mtu));
      }
    }
  }

  /**
   * Opens the back-end of every net device of VM `vm` (in config order; stream servers listen
   * before a later VM's clients dial). DEVICE_ERROR names the device when one cannot be opened
   * (a TAP without CAP_NET_ADMIN, a socket path that cannot be bound).
   */
  async open(config: VmConfig, vm: number): Promise<void> {
    for (const { device, config: net } of netDevices(config)) {
      this.keepAlive ??= setInterval(() => undefined, 2 ** 30);
      const spec = parseNetBackend(net.backend);
      if (typeof spec === 'string') throw new VmmError('INVALID_CONFIG', `invalid config: ${spec} → at devices.${device}.backend`, { field: `devices.${device}.backend` });
      try {
        let backend: NetBackend;
        switch (spec.kind) {
          case 'switch': {
            let lan = this.switches.get(spec.name);
            if (lan === undefined) {
              lan = new L2Switch({ name: spec.name, mtu: this.switchMtu.get(spec.name) ?? net.mtu });
              this.switches.set(spec.name, lan);
            }
            backend = lan.connect(`vm${vm}.net${device}`);
            break;
          }
          case 'tap':
            backend = TapNetBackend.open({ name: spec.ifname, queuePairs: net.queues, mtu: net.mtu });
            break;
          case 'stream':
            backend = spec.server
              ? await StreamNetBackend.listen({ path: spec.path }, { mtu: net.mtu })
              : await StreamNetBackend.connect({ path: spec.path }, { mtu: net.mtu, reconnectMs: STREAM_RECONNECT_MS });
            break;
        }
        this.backends.set(`${vm}/${device}`, backend);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new VmmError('DEVICE_ERROR', `devices.${device}: cannot open ${net.backend}: ${message}`, { device: `net${device}` }, { cause: error });
      }
    }
  }

  /** The back-end opened for device `device` of VM `vm`. */
  backend(vm: number, device: number): NetBackend {
    const backend = this.backends.get(`${vm}/${device}`);
    if (backend === undefined) throw new VmmError('INTERNAL', `net device ${device} of VM ${vm} has no open back-end`);
    return backend;
  }

  /** Closes every back-end and switch. Idempotent. */
  async close(): Promise<void> {
    const backends = [...this.backends.values()];
    this.backends.clear();
    try {
      await Promise.allSettled(backends.map((b) => b.close()));
      for (const lan of this.switches.values()) lan.close();
    } finally {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }
}
