import { featureBits, type ActivationContext, type Features, type VirtioDevice } from '@virtio-ts/device';
import { GuestMemory } from '@virtio-ts/memory';
import { setTimer } from '../web-apis.js';
import { ChainBuilder } from './chain-builder.js';
import { ScriptedQueue } from './scripted-queue.js';

/** Everything a device test needs: memory, scripted queues, recorded interrupts and resets. */
export interface Harness {
  readonly memory: GuestMemory;
  readonly builder: ChainBuilder;
  readonly queues: ScriptedQueue[];
  readonly queueInterrupts: number[];
  readonly configInterrupts: { count: number };
  readonly needsReset: string[];
  /** Negotiates `features` (validateFeatures) and activates the device over the scripted queues. */
  activate(features: Features): void;
}

/** Builds a {@link Harness} for `device` with one ScriptedQueue per declared queue. */
export function harness(device: VirtioDevice, memorySize = 4 << 20): Harness {
  const memory = GuestMemory.create([{ guestAddress: 0, size: memorySize }]);
  const queues = device.queueMaxSizes.map((size) => new ScriptedQueue(size));
  const queueInterrupts: number[] = [];
  const configInterrupts = { count: 0 };
  const needsReset: string[] = [];
  return {
    memory,
    builder: new ChainBuilder(memory),
    queues,
    queueInterrupts,
    configInterrupts,
    needsReset,
    activate(features: Features) {
      if (device.validateFeatures?.(features) === false) throw new Error('features refused');
      const context: ActivationContext = {
        memory,
        features,
        queues: queues,
        interrupt: {
          signalQueue: (index) => queueInterrupts.push(index),
          signalConfig: () => configInterrupts.count++,
        },
        markNeedsReset: (reason) => needsReset.push(reason ?? ''),
      };
      device.activate(context);
    },
  };
}

/** Every feature the device offers. */
export function allOffered(device: VirtioDevice): Features {
  return device.deviceFeatures;
}

/** The offered features without the given bits. */
export function without(device: VirtioDevice, ...bits: number[]): Features {
  return device.deviceFeatures & ~featureBits(...bits);
}

/** Lets pending promise callbacks run (a few macrotask turns). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setTimer(resolve, 0));
}
