/**
 * Runs `task(i, slot)` for i in [0, count) with at most `depth` running at once; `slot` in
 * [0, depth) names the worker running it (each slot owns one DMA buffer). Rejects with the first
 * error once the tasks already running have settled.
 */
export async function runPool(count: number, depth: number, task: (index: number, slot: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (slot: number): Promise<void> => {
    while (failure === undefined && next < count) {
      const index = next++;
      try {
        await task(index, slot);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let slot = 0; slot < Math.min(depth, count); slot++) workers.push(worker(slot));
  await Promise.all(workers);
  if (failure !== undefined) throw failure.error;
}
