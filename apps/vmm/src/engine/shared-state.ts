import { MAILBOX_WORDS } from '../machine/exit-mailbox.js';
import { INTERRUPT_WORDS } from '../machine/interrupt-lines.js';
import { DOORBELL_TABLE_BYTES, MAX_DOORBELLS } from '../machine/doorbells.js';

/** Control words shared by the VMM and every vCPU. */
export const CONTROL_ATTENTION = 0;
/** Set to 1 by the VMM to ask every vCPU to stop at its next check (a failed run). */
export const CONTROL_STOP = 1;
/** Set to 1 by the VMM when every VM of a multi-VM run has finished its workloads: lingering vCPUs end. */
export const CONTROL_RELEASE = 2;
const CONTROL_WORDS = 3;

/**
 * The shared memory of one machine besides guest RAM: what KVM keeps in the kernel (exit
 * structures, ioeventfds, irqfds), here SharedArrayBuffers posted to every vCPU worker.
 */
export interface SharedState {
  readonly ram: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly mailboxes: SharedArrayBuffer;
  readonly doorbells: SharedArrayBuffer;
  /** The ioeventfd table: which notify writes ring which doorbell. */
  readonly doorbellTable: SharedArrayBuffer;
  readonly interrupts: SharedArrayBuffer;
}

export function createSharedState(ram: SharedArrayBuffer, vcpus: number): SharedState {
  return {
    ram,
    control: new SharedArrayBuffer(CONTROL_WORDS * 4),
    mailboxes: new SharedArrayBuffer(vcpus * MAILBOX_WORDS * 4),
    doorbells: new SharedArrayBuffer(MAX_DOORBELLS * 4),
    doorbellTable: new SharedArrayBuffer(DOORBELL_TABLE_BYTES),
    interrupts: new SharedArrayBuffer(vcpus * INTERRUPT_WORDS * 4),
  };
}
