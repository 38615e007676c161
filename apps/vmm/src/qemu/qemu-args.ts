import type { ServeDeviceSpec } from '../serve/serve-options.js';

/** Everything the QEMU command line depends on. */
export interface QemuMachine {
  readonly kernel: string;
  readonly initrd?: string;
  /** Extra kernel command line (after the engine's own console and init arguments). */
  readonly append?: string;
  /** Guest RAM in bytes; rounded up to whole MiB for QEMU. */
  readonly memory: number;
  readonly vcpus: number;
  /** The devices of the embedded `vmm serve`, each attached through its socket. */
  readonly devices: readonly ServeDeviceSpec[];
  /** A file holding the guest script, passed through fw_cfg as `opt/virtio-ts/script`. */
  readonly scriptFile?: string;
}

/**
 * QEMU's arguments for a Linux guest whose devices are all vhost-user: TCG (`-cpu qemu64`; /dev/kvm
 * on the machines this was built on hangs a Linux guest), RAM as a shared memfd (vhost-user maps
 * guest memory in the back-end, so it must be shareable), the serial port on stdio, one chardev and
 * one vhost-user-*-pci front-end per device.
 */
export function qemuArgs(machine: QemuMachine): string[] {
  const mib = Math.ceil(machine.memory / 2 ** 20);
  // no_timer_check: on a loaded host TCG can fail the kernel's IO-APIC timer check (a boot panic).
  const append = ['console=ttyS0', 'panic=-1', 'loglevel=4', 'rdinit=/init', 'no_timer_check', machine.append ?? ''].filter(Boolean).join(' ');
  const args = [
    '-machine', 'pc,accel=tcg', '-cpu', 'qemu64', '-m', `${mib}M`, '-smp', String(machine.vcpus),
    '-object', `memory-backend-memfd,id=mem,size=${mib}M,share=on`, '-numa', 'node,memdev=mem',
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-nodefaults',
    '-kernel', machine.kernel,
  ];
  if (machine.initrd !== undefined) args.push('-initrd', machine.initrd);
  args.push('-append', append);
  if (machine.scriptFile !== undefined) args.push('-fw_cfg', `name=opt/virtio-ts/script,file=${machine.scriptFile}`);
  for (const device of machine.devices) {
    args.push('-chardev', `socket,id=${device.id},path=${device.socket}`);
    if (device.kind === 'blk') {
      // The front-end's packed= decides the ring layout; the back-end offers both.
      args.push('-device', `vhost-user-blk-pci,chardev=${device.id},num-queues=${device.queues}`);
    } else if (device.kind === 'net') {
      // QEMU keeps the control queue. vectors=0 (INTx): QEMU 7.2 under TCG segfaults when a
      // vhost-user-net device unmasks MSI-X vectors (it reaches for KVM irqfds that TCG lacks).
      args.push('-netdev', `vhost-user,id=${device.id},chardev=${device.id},queues=${device.queues}`);
      args.push('-device', `virtio-net-pci,netdev=${device.id},mac=${device.mac}${device.queues > 1 ? ',mq=on' : ''},vectors=0`);
    } else if (device.kind === 'scsi') {
      args.push('-device', `vhost-user-scsi-pci,chardev=${device.id},num_queues=${device.queues},virtqueue_size=${device.queueSize}`);
    } else {
      args.push('-device', `vhost-user-rng-pci,chardev=${device.id}`);
    }
  }
  return args;
}
