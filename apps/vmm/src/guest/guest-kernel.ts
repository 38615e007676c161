import { GuestMemoryAllocator, type GuestAllocator } from '@virtio-ts/device';
import type { GuestMemory } from '@virtio-ts/memory';
import { VmmError } from '../errors.js';
import type { GuestBus } from '../machine/bus.js';
import { VECTORS_PER_VCPU } from '../machine/interrupt-lines.js';

/**
 * Vectors below this are the firmware's: line interrupts of virtio-mmio devices, given in the
 * boot info. MSI-X vectors are allocated from here up, as x86 leaves 0–31 to exceptions.
 */
export const FIRST_DYNAMIC_VECTOR = 64;

/**
 * The model guest's kernel on one vCPU: its view of RAM, the bus its register accesses go
 * through (exits, or direct calls when inline), a heap for rings and DMA buffers, and the
 * interrupt vector table that the vCPU's interrupt controller dispatches into.
 */
export class GuestKernel {
  readonly allocator: GuestAllocator;
  private readonly handlers = new Map<number, () => void>();
  /** Interrupts dispatched to a handler. */
  interrupts = 0;
  /** Interrupts that arrived on a vector with no handler (spurious). */
  spurious = 0;
  /** The first error a handler threw: the vCPU ends the run with it. */
  fault: unknown;

  constructor(
    readonly vcpu: number,
    readonly memory: GuestMemory,
    readonly bus: GuestBus,
    heap: { readonly base: number; readonly length: number },
  ) {
    this.allocator = new GuestMemoryAllocator(memory, heap.base, heap.length);
  }

  /** Installs the handler of interrupt `vector` (request_irq). */
  setVector(vector: number, handler: () => void): void {
    if (this.handlers.has(vector)) throw new VmmError('INTERNAL', `vector ${vector} already has a handler`, { vcpu: this.vcpu });
    this.handlers.set(vector, handler);
  }

  /** A free vector in [FIRST_DYNAMIC_VECTOR, VECTORS_PER_VCPU) with `handler` installed (MSI-X allocation). */
  allocateVector(handler: () => void): number {
    for (let v = FIRST_DYNAMIC_VECTOR; v < VECTORS_PER_VCPU; v++) {
      if (this.handlers.has(v)) continue;
      this.handlers.set(v, handler);
      return v;
    }
    throw new VmmError('GUEST_ERROR', `vCPU ${this.vcpu} has no free interrupt vector`, { vcpu: this.vcpu });
  }

  /** Removes a vector's handler (free_irq). */
  freeVector(vector: number): void {
    this.handlers.delete(vector);
  }

  /** Runs the handler of `vector`. A handler that throws records the fault; the vCPU stops at its next check. */
  dispatch(vector: number): void {
    const handler = this.handlers.get(vector);
    if (handler === undefined) {
      this.spurious++;
      return;
    }
    this.interrupts++;
    try {
      handler();
    } catch (error) {
      this.fault ??= error;
    }
  }
}
